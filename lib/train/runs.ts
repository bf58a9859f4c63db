/**
 * Run folders: listing the runs of a results folder and their checkpoints, and finding the newest valid checkpoint
 * (for `--resume-from auto` and the checkpoint manager).
 *
 * @module
 */

import { CheckpointError, verifyCheckpointBytes } from "./checkpoint.ts";
import { readRunLayout } from "./layout.ts";
import type { RunLayout } from "./layout.ts";
import type { TrainingState } from "./checkpoint.ts";

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
  /** The checkpoint file. */
  path: string;
  /** The run it belongs to. */
  run: RunInfo;
  /** Its training state. */
  state: TrainingState;
}

/** Progress of a checkpoint (for ordering): epochs done plus the share of the next one. */
export function progressOf(state: TrainingState): number {
  return state.epoch + Math.min(state.step_in_epoch, 999_999) / 1e6;
}

/**
 * The newest valid checkpoint: of the newest run that has one (of the run named `only`, where given); within a run
 * the one furthest along (ties: newest file). Corrupt or truncated files are skipped with a warning.
 */
export async function findLatestCheckpoint(
  resultsDir: string,
  warn: (msg: string) => void = console.warn,
  only?: string,
): Promise<FoundCheckpoint | undefined> {
  for (const run of await listRuns(resultsDir)) {
    if (only !== undefined && run.name !== only) continue;
    const { best, damaged } = await bestCheckpointOf(run);
    for (const d of damaged) warn(`warning: skipping ${d.path}: ${d.problems.join("; ")}`);
    if (best) return best;
    if (run.checkpoints.length) {
      warn(`warning: run ${run.dir} has no valid checkpoint; looking at older runs`);
    }
  }
  return undefined;
}

/** A checkpoint file that does not verify, with what is wrong. */
export interface DamagedCheckpoint {
  /** The file. */
  path: string;
  /** What is wrong, one sentence each. */
  problems: string[];
}

/** The best valid checkpoint of one run (furthest along; ties: newest file), and the files that do not verify. */
export async function bestCheckpointOf(
  run: RunInfo,
): Promise<{ best?: FoundCheckpoint; damaged: DamagedCheckpoint[] }> {
  let best: FoundCheckpoint | undefined;
  const damaged: DamagedCheckpoint[] = [];
  for (const c of run.checkpoints) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(c.path);
    } catch (e) {
      damaged.push({ path: c.path, problems: [`cannot be read: ${(e as Error).message}`] });
      continue;
    }
    const v = await verifyCheckpointBytes(bytes, c.path);
    if (!v.ok) {
      damaged.push({ path: c.path, problems: v.problems });
      continue;
    }
    const s = v.state!;
    if (!best || progressOf(s) > progressOf(best.state)) best = { path: c.path, run, state: s };
  }
  return { best, damaged };
}

/** Epochs a run's `loss_history.json` records (0 when it is missing or unreadable). */
async function recordedEpochs(run: RunInfo): Promise<number> {
  try {
    const h = JSON.parse(await Deno.readTextFile(run.layout.history));
    return Array.isArray(h?.train_losses) ? h.train_losses.length : 0;
  } catch {
    return 0;
  }
}

/**
 * The checkpoint `--resume-from auto` continues: the furthest valid checkpoint of the run named `only`, or else of
 * the newest run. It never moves to another run: where that run has checkpoints (or recorded epochs) but no
 * checkpoint verifies, it throws a {@linkcode CheckpointError} (exit 2) listing the damaged files and what the user
 * can do, and nothing is written. Undefined: the run has nothing to resume (no checkpoint was ever written), or
 * there is no run.
 */
export async function findResumeCheckpoint(
  resultsDir: string,
  warn: (msg: string) => void,
  only?: string,
): Promise<FoundCheckpoint | undefined> {
  const runs = await listRuns(resultsDir);
  const run = only === undefined ? runs[0] : runs.find((r) => r.name === only);
  if (!run) return undefined;
  const { best, damaged } = await bestCheckpointOf(run);
  if (best) {
    for (const d of damaged) warn(`warning: skipping ${d.path}: ${d.problems.join("; ")}`);
    return best;
  }
  const epochs = await recordedEpochs(run);
  if (!damaged.length && !epochs) return undefined; // a run that never saved: nothing of its past to lose
  const files = damaged.map((d) =>
    `  ${d.path}: ${
      d.problems.map((p) => p.startsWith(`${d.path}: `) ? p.slice(d.path.length + 2) : p).join("; ")
    }`
  ).join("\n");
  const others = only === undefined && runs.length > 1
    ? ` (--resume-from auto stays on the newest run: older runs, such as ${
      runs[1].name
    }, are resumed only by ` +
      `name or path)`
    : "";
  throw new CheckpointError(
    `run ${run.dir} has ${
      damaged.length
        ? `no checkpoint that verifies${
          epochs ? ` (its history records ${epochs} epoch(s))` : ""
        }:\n${files}\n`
        : `a history of ${epochs} epoch(s) but no checkpoint file in ${run.checkpointDir}; `
    }nothing was changed${others}. To go on: restore a checkpoint of this run from a backup (deno task ckpt ` +
      `verify checks it), or resume one that verifies with --resume-from PATH, or start a new run with another ` +
      `--run-name`,
  );
}
