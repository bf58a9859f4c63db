/**
 * Run folders: naming, listing, finding the newest valid checkpoint (for `--resume-from auto` and the checkpoint
 * manager), and the human log.
 *
 * @module
 */

import { verifyCheckpointBytes } from "./checkpoint.ts";
import type { TrainingState } from "./checkpoint.ts";

/** File names of the special checkpoints. */
export const LATEST = "latest_checkpoint.safetensors";
export const BEST = "best_checkpoint.safetensors";
export const FINAL = "final_checkpoint.safetensors";

/** A file in a run folder that exists while a training session runs (pid, host, start). */
export const RUN_LOCK = ".running";

/** `checkpoint_epoch_NNNN.safetensors` */
export function epochCheckpointName(epoch: number): string {
  return `checkpoint_epoch_${String(epoch).padStart(4, "0")}.safetensors`;
}

/** The run folder of a checkpoint file inside a run's `checkpoints/` folder; undefined for one kept elsewhere. */
export function runFolderOf(checkpointPath: string): string | undefined {
  const parts = checkpointPath.split("/");
  parts.pop();
  if (parts.at(-1) !== "checkpoints") return undefined;
  parts.pop();
  return parts.join("/") || ".";
}

/**
 * The run folder of a checkpoint: the folder above its `checkpoints/`, or, for one kept elsewhere
 * (`--checkpoint-dir`), `<results-dir>/<run name>` from its training state when that folder exists.
 */
export async function runFolderForCheckpoint(
  path: string,
  state?: TrainingState,
): Promise<string | undefined> {
  const inside = runFolderOf(path);
  if (inside || !state) return inside;
  const dir = `${state.config["results-dir"] ?? "results"}/${state.run_name}`;
  try {
    return (await Deno.stat(`${dir}/config.json`)).isFile ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** A default run name: `gino_YYYYMMDD_HHMMSS` (local time). */
export function defaultRunName(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `gino_${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}_${p(d.getHours())}${
    p(d.getMinutes())
  }${p(d.getSeconds())}`;
}

/** A checkpoint file found in a run. */
export interface CheckpointFile {
  /** Where the file is. */
  path: string;
  /** Its file name (`latest_checkpoint.safetensors`, `checkpoint_epoch_0005.safetensors`, ...). */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Modification time (ms since the epoch). */
  mtime: number;
}

/**
 * Where a run's files are. The one place that says so: the trainer, the checkpoint manager and predict all use it.
 * Checkpoints are in `<dir>/checkpoints` unless the run was started with `--checkpoint-dir`, which `config.json`
 * records (see {@linkcode readRunLayout}).
 */
export interface RunLayout {
  /** The run folder (`<results-dir>/<run-name>`). */
  dir: string;
  /** The folder of the run's checkpoints. */
  checkpointDir: string;
  /** Every setting, the data fingerprint and the normalisation statistics. */
  config: string;
  /** Losses of every epoch and the session records. */
  history: string;
  /** One JSON line per epoch. */
  metrics: string;
  /** The human log. */
  log: string;
  /** Present while a session trains the run (see {@linkcode RunLock}). */
  lock: string;
}

/** The layout of a run folder, its checkpoints in `checkpointDir` (default `<dir>/checkpoints`). */
export function runLayout(dir: string, checkpointDir?: string): RunLayout {
  const d = dir.replace(/\/+$/, "") || ".";
  return {
    dir: d,
    checkpointDir: checkpointDir ?? `${d}/checkpoints`,
    config: `${d}/config.json`,
    history: `${d}/loss_history.json`,
    metrics: `${d}/metrics.jsonl`,
    log: `${d}/train.log`,
    lock: `${d}/${RUN_LOCK}`,
  };
}

/** The checkpoint folder a run's `config.json` records, if it is not the default one. */
export async function recordedCheckpointDir(dir: string): Promise<string | undefined> {
  try {
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    const custom = cfg.checkpoint_dir ?? cfg.settings?.["checkpoint-dir"];
    return typeof custom === "string" && custom ? custom : undefined;
  } catch {
    return undefined; // no or unreadable config: the default place
  }
}

/** The layout of an existing run folder, reading where its checkpoints are from its `config.json`. */
export async function readRunLayout(dir: string): Promise<RunLayout> {
  return runLayout(dir, await recordedCheckpointDir(dir));
}

/** A run folder. */
export interface RunInfo {
  /** The run's name (its folder's name). */
  name: string;
  /** The run folder. */
  dir: string;
  /** Where its checkpoints are. */
  checkpointDir: string;
  /** Where all its files are. */
  layout: RunLayout;
  /** Its checkpoint files, newest first. */
  checkpoints: CheckpointFile[];
  /** Newest modification time of anything in the run (ms). */
  mtime: number;
}

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch {
    return null;
  }
}

/** Checkpoint files of a run folder (from `<run>/checkpoints`), newest first. */
export async function listCheckpoints(checkpointDir: string): Promise<CheckpointFile[]> {
  const out: CheckpointFile[] = [];
  try {
    for await (const e of Deno.readDir(checkpointDir)) {
      if (!e.isFile || !e.name.endsWith(".safetensors")) continue;
      const st = await statOrNull(`${checkpointDir}/${e.name}`);
      if (st) {
        out.push({
          path: `${checkpointDir}/${e.name}`,
          name: e.name,
          size: st.size,
          mtime: st.mtime?.getTime() ?? 0,
        });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => b.mtime - a.mtime || b.name.localeCompare(a.name));
}

/** Run folders of a results folder, newest first. */
export async function listRuns(resultsDir: string): Promise<RunInfo[]> {
  const runs: RunInfo[] = [];
  try {
    for await (const e of Deno.readDir(resultsDir)) {
      if (!e.isDirectory || e.name.startsWith(".")) continue;
      const dir = `${resultsDir}/${e.name}`;
      const cfg = await statOrNull(`${dir}/config.json`);
      const layout = await readRunLayout(dir);
      const checkpointDir = layout.checkpointDir;
      const checkpoints = await listCheckpoints(checkpointDir);
      if (!cfg && checkpoints.length === 0) continue;
      const hist = await statOrNull(`${dir}/loss_history.json`);
      const mtime = Math.max(
        cfg?.mtime?.getTime() ?? 0,
        hist?.mtime?.getTime() ?? 0,
        ...checkpoints.map((c) => c.mtime),
      );
      runs.push({ name: e.name, dir, checkpointDir, layout, checkpoints, mtime });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return runs.sort((a, b) => b.mtime - a.mtime || b.name.localeCompare(a.name));
}

/** A valid checkpoint with its state. */
export interface FoundCheckpoint {
  /** Path. */
  path: string;
  /** Run. */
  run: RunInfo;
  /** State. */
  state: TrainingState;
}

/** Progress of a checkpoint (for ordering): epochs done plus the share of the next one. */
export function progressOf(state: TrainingState): number {
  return state.epoch + Math.min(state.step_in_epoch, 999_999) / 1e6;
}

/**
 * The newest valid checkpoint: of the newest run that has one; within a run the one furthest along (ties: newest
 * file). Corrupt or truncated files are skipped with a warning.
 */
export async function findLatestCheckpoint(
  resultsDir: string,
  warn: (msg: string) => void = console.warn,
): Promise<FoundCheckpoint | undefined> {
  for (const run of await listRuns(resultsDir)) {
    let best: FoundCheckpoint | undefined;
    for (const c of run.checkpoints) {
      const v = await verifyCheckpointBytes(await Deno.readFile(c.path), c.path);
      if (!v.ok) {
        warn(`warning: skipping ${c.path}: ${v.problems.join("; ")}`);
        continue;
      }
      const s = v.state!;
      if (!best || progressOf(s) > progressOf(best.state)) best = { path: c.path, run, state: s };
    }
    if (best) return best;
    if (run.checkpoints.length) {
      warn(`warning: run ${run.dir} has no valid checkpoint; looking at older runs`);
    }
  }
  return undefined;
}

/**
 * A logger that writes to the console and appends to a log file. Lines logged before the file is known (before
 * {@linkcode RunLog.attach}) are kept and written to it then, with their own times.
 */
export class RunLog {
  #file?: Deno.FsFile;
  #enc = new TextEncoder();
  #pending: string[] = [];

  constructor(path?: string, readonly quiet = false) {
    if (path) this.#file = Deno.openSync(path, { append: true, create: true });
  }

  #write(msg: string): void {
    const line = `${new Date().toISOString()} ${msg}\n`;
    if (this.#file) this.#file.writeSync(this.#enc.encode(line));
    else this.#pending.push(line);
  }

  /** Logs a line (timestamped in the file). */
  info(msg: string): void {
    if (!this.quiet) console.log(msg);
    this.#write(msg);
  }

  /** Writes a line to the log file only. */
  record(msg: string): void {
    this.#write(msg);
  }

  /** Logs a warning (stderr). */
  warn(msg: string): void {
    console.error(msg);
    this.#write(msg);
  }

  /** Starts writing to a file (after the run folder is known), beginning with the lines logged so far. */
  attach(path: string): void {
    this.#file?.close();
    this.#file = Deno.openSync(path, { append: true, create: true });
    if (this.#pending.length) this.#file.writeSync(this.#enc.encode(this.#pending.join("")));
    this.#pending = [];
  }

  /** Closes the log file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}
