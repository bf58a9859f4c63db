/**
 * The checkpoint policy: which checkpoint files hold which training state. One rule, used both when a session
 * saves and when a resume checks what a killed session left unwritten:
 *
 * - `latest_checkpoint`: every save (end of each epoch, and a stop mid-epoch);
 * - `checkpoint_epoch_NNNN`: the end of every epoch that is a multiple of `--save-checkpoint-every`;
 * - `best_checkpoint`: the end of the epoch with the lowest validation loss so far (ties keep the earlier);
 * - `final_checkpoint`: the end of the last epoch (the target `--epochs`, or early stopping).
 *
 * All files written at one save hold the same bytes, so a missing one can be restored by copying another.
 *
 * @module
 */

import type { TrainingState } from "./checkpoint.ts";
import type { TrainSettings } from "./settings.ts";
import { BEST, epochCheckpointName, FINAL, LATEST } from "./layout.ts";

/** The run-control settings the policy depends on. */
export interface PolicySettings {
  /** `--save-checkpoint-every`. */
  every: number;
  /** `--epochs`: the target. */
  epochs: number;
  /** `--early-stopping-patience` (undefined: off). */
  patience?: number;
}

/** True when the run is over at this state: target reached, or early stopping. */
export function isFinished(state: TrainingState, p: PolicySettings): boolean {
  if (state.step_in_epoch !== 0) return false;
  return state.epoch >= p.epochs || earlyStopped(state, p);
}

/** True when early stopping ends the run at this state. */
export function earlyStopped(state: TrainingState, p: PolicySettings): boolean {
  return p.patience !== undefined && state.early_stopping.bad_epochs >= p.patience;
}

/**
 * The checkpoint file names that must hold `state` (in the order they are written: the epoch file first, latest
 * last, so that a kill part-way leaves `latest` at the previous save and every written file is complete).
 */
export function checkpointNames(state: TrainingState, p: PolicySettings): string[] {
  const names: string[] = [];
  if (state.step_in_epoch === 0 && state.epoch > 0) {
    if (state.epoch % p.every === 0) names.push(epochCheckpointName(state.epoch));
    if (state.best.epoch === state.epoch) names.push(BEST);
    if (isFinished(state, p)) names.push(FINAL);
  }
  names.push(LATEST);
  return names;
}

/** The policy settings a state was saved under (its own `--save-checkpoint-every`, `--epochs`, patience). */
export function savedPolicy(state: TrainingState): PolicySettings {
  return policyOf(state.config);
}

/** The policy settings of a run's settings. */
export function policyOf(s: TrainSettings): PolicySettings {
  return {
    every: s.run.saveCheckpointEvery,
    epochs: s.optim.epochs,
    patience: s.optim.earlyStoppingPatience,
  };
}
