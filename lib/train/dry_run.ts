/**
 * `train --dry-run`: what a training run would see, without training: the data as training loads them (windows,
 * batches, memory, normalisation) and the checkpoint a resume would start from.
 *
 * @module
 */

import { PatchBatchSampler } from "../data/sampler.ts";
import { formatSummary, summarizeDataset } from "../data/summary.ts";
import type { DataSummary } from "../data/summary.ts";
import { validateSettings } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";
import { planResume } from "./resume.ts";
import type { ResumeOptions } from "./resume.ts";
import { loadTrainingData } from "./training_data.ts";

/** The dry run's report: the data summary and the resume point. */
export interface DryRunReport extends DataSummary {
  /** The checkpoint a resume would start from (null: a new run). */
  resume: { checkpoint: string; epoch: number; step_in_epoch: number } | null;
}

/** Prints what training with these settings would see (one JSON object with `json`); returns the exit status. */
export async function dryRun(
  settings: TrainSettings,
  explicit: Set<string>,
  options: ResumeOptions,
  json: boolean,
): Promise<number> {
  validateSettings(settings);
  const log = { info: (m: string) => console.error(m), warn: (m: string) => console.error(m) };
  const plan = await planResume(settings, explicit, options, log);
  const s = plan.settings, c = plan.checkpoint;
  // the dry run reports what it finds, also when training would refuse it (no windows, other data)
  const ds = await loadTrainingData(s, c, explicit, true, log, false);
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), {
    batchSize: s.data.batchSize,
    shuffleWithinBatches: s.data.shuffleWithinBatches,
    shufflePatches: s.data.shufflePatches,
    seed: s.data.seed,
  });
  sampler.beginEpoch();
  const resume = c
    ? { checkpoint: c.path, epoch: c.state.epoch, step_in_epoch: c.state.step_in_epoch }
    : null;
  const report: DryRunReport = { ...summarizeDataset(ds, s.data.batchSize), resume };
  if (json) {
    console.log(JSON.stringify(report));
    return 0;
  }
  console.log(formatSummary(report));
  if (options.resumeFrom) {
    console.log(
      resume
        ? `would resume ${resume.checkpoint} (epoch ${resume.epoch}` +
          `${resume.step_in_epoch ? ` + ${resume.step_in_epoch} batches` : ""})`
        : "would start a new run (no checkpoint to resume)",
    );
  }
  return 0;
}
