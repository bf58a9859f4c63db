/**
 * Where a run's files are: the names of the special checkpoints, the run folder layout (one place, used by the
 * trainer, the checkpoint manager and predict) and the run folder of a checkpoint.
 *
 * @module
 */

import type { TrainingState } from "./checkpoint.ts";
import { settingsFromSaved } from "./settings.ts";

/** File names of the special checkpoints. */
export const LATEST = "latest_checkpoint.safetensors";
export const BEST = "best_checkpoint.safetensors";
export const FINAL = "final_checkpoint.safetensors";

/** A file in a run folder that exists while a training session runs (pid, host, start). */
export const RUN_LOCK = ".running";

/** Disk space a training session holds for its last words (see `SpaceReserve`); removed when it ends. */
export const SPACE_RESERVE = ".space_reserve";

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
  const dir = `${state.config.run.resultsDir}/${state.run_name}`;
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
    const custom = cfg.checkpoint_dir ?? settingsFromSaved(cfg.settings).run.checkpointDir;
    return typeof custom === "string" && custom ? custom : undefined;
  } catch {
    return undefined; // no or unreadable config: the default place
  }
}

/** The layout of an existing run folder, reading where its checkpoints are from its `config.json`. */
export async function readRunLayout(dir: string): Promise<RunLayout> {
  return runLayout(dir, await recordedCheckpointDir(dir));
}
