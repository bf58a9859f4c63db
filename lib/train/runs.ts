/**
 * Run folders: listing the runs of a results folder and their checkpoints, and finding the newest valid checkpoint
 * (for `--resume-from auto` and the checkpoint manager).
 *
 * @module
 */

import { verifyCheckpointBytes } from "./checkpoint.ts";
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
