/**
 * Resume reconciliation: which checkpoint a session continues (`--resume-from auto|PATH`) and with which settings.
 * The checkpoint's settings are the base; settings given now override them, except that a different model or
 * window layout is refused and different data need `--force-resume` (see {@linkcode ResumeRule}).
 *
 * @module
 */

import { CHECKPOINT_FORMATS, CheckpointError, IMPORTED, loadCheckpoint } from "./checkpoint.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { findResumeCheckpoint as findInRuns } from "./runs.ts";
import { differences, overlay, pathKey, SETTING_SPECS } from "./settings.ts";
import type { ResumeRule, TrainSettings } from "./settings.ts";

/** How a session starts: a new run, a checkpoint, or the newest valid checkpoint. */
export interface ResumeOptions {
  /**
   * A checkpoint path, or `auto` (the newest valid checkpoint of the newest run; with `--run-name`, of that run);
   * undefined: a new run.
   */
  resumeFrom?: string;
  /** Continue although the data settings or the data differ from the checkpoint's. */
  forceResume?: boolean;
}

/** The checkpoint a run would resume from, and the settings it would run with. */
export interface ResumePlan {
  /** The checkpoint (undefined: a new run). */
  checkpoint?: Checkpoint;
  /** The settings to run with. */
  settings: TrainSettings;
}

/** Settings a resume always takes from the current invocation (where to look, how to compute). */
const ALWAYS_CURRENT = ["run.resultsDir", "run.backend"];

const keysWith = (rule: ResumeRule) =>
  new Set(SETTING_SPECS.filter((s) => s.resume === rule).map((s) => pathKey(s.path)));

/**
 * Finds the checkpoint to resume and merges settings (see the module documentation). `explicit` holds the
 * settings given on the command line or in `--config` (`group.field` keys). Reads only.
 */
export async function planResume(
  settings: TrainSettings,
  explicit: Set<string>,
  options: ResumeOptions,
  log: { info(m: string): void; warn(m: string): void },
): Promise<ResumePlan> {
  // --run-name with --resume-from auto: that run's newest checkpoint (a chain of jobs resumes its own run)
  const named = explicit.has("run.runName") ? settings.run.runName : undefined;
  const checkpoint = await findResumeCheckpoint(settings, options, log, named);
  if (!checkpoint) return { settings: structuredClone(settings) };
  if (!(CHECKPOINT_FORMATS as readonly string[]).includes(checkpoint.state.format)) {
    throw new CheckpointError(`${checkpoint.path}: unknown checkpoint format ${checkpoint.state.format}`);
  }
  const saved = checkpoint.state.config;
  const line = (d: ReturnType<typeof differences>[number]) =>
    `--${d.spec.name}: saved ${JSON.stringify(d.a)}, now ${JSON.stringify(d.b)}`;
  const given = [...explicit];
  const refused = differences(saved, settings, given.filter((k) => keysWith("fixed").has(k))).map(line);
  if (refused.length) {
    throw new CheckpointError(
      `cannot resume ${checkpoint.path} with a different model or windows:\n  ${refused.join("\n  ")}\n` +
        `start a new run instead (without --resume-from), or drop these flags to keep the saved values`,
    );
  }
  const dataDiff = differences(saved, settings, given.filter((k) => keysWith("data").has(k))).map(line);
  // imported weights were trained on no data of ours: the first run chooses them
  if (dataDiff.length && !options.forceResume && checkpoint.state.data_fingerprint !== IMPORTED) {
    throw new CheckpointError(
      `cannot resume ${checkpoint.path}: the data settings differ:\n  ${dataDiff.join("\n  ")}\n` +
        `drop these flags, or pass --force-resume to continue on other data`,
    );
  }
  const merged = structuredClone(saved);
  overlay(merged, settings, [...given, ...ALWAYS_CURRENT]);
  return { checkpoint, settings: merged };
}

async function findResumeCheckpoint(
  settings: TrainSettings,
  options: ResumeOptions,
  log: { info(m: string): void; warn(m: string): void },
  run?: string,
): Promise<Checkpoint | undefined> {
  if (!options.resumeFrom) return undefined;
  if (options.resumeFrom !== "auto") return await loadCheckpoint(options.resumeFrom);
  const found = await findInRuns(settings.run.resultsDir, (m) => log.warn(m), run);
  if (found) return await loadCheckpoint(found.path);
  log.info(
    run
      ? `no checkpoint of run ${run} in ${settings.run.resultsDir}: starting it`
      : `no run with a checkpoint in ${settings.run.resultsDir}: starting a new run`,
  );
  return undefined;
}
