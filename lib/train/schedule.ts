/**
 * The learning-rate schedule: PyTorch's ExponentialLR stepped every `--lr-scheduler-interval` epochs, i.e. the
 * learning rate of epoch e (1-based) is `lr0 * gamma^floor((e - 1) / interval)`. Its state travels in every
 * checkpoint, so a resumed run continues the schedule where it was.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freshSchedule, stepSchedule } from "./schedule.ts";
 * const s = freshSchedule({ learningRate: 1e-3, lrGamma: 0.5, lrSchedulerInterval: 2 });
 * const lrs = [1, 2, 3, 4].map((epoch) => { const lr = s.lr; stepSchedule(s, epoch); return lr; });
 * assert.ok(JSON.stringify(lrs) === JSON.stringify([1e-3, 1e-3, 5e-4, 5e-4]));
 * ```
 *
 * @module
 */

import type { OptimSettings } from "./settings.ts";

/** Saved state of the schedule. */
export interface ScheduleState {
  /** Learning rate of the next epoch. */
  lr: number;
  /** Learning rate the schedule started from. */
  base_lr: number;
  /** Decay factor. */
  gamma: number;
  /** Epochs between decays. */
  interval: number;
}

/** The schedule of a new run. */
export function freshSchedule(
  s: Pick<OptimSettings, "learningRate" | "lrGamma" | "lrSchedulerInterval">,
): ScheduleState {
  return { lr: s.learningRate, base_lr: s.learningRate, gamma: s.lrGamma, interval: s.lrSchedulerInterval };
}

/** After epoch `epoch` (1-based) ends: decays the learning rate when the interval says so. */
export function stepSchedule(state: ScheduleState, epoch: number): void {
  if (epoch % state.interval === 0) state.lr *= state.gamma;
}

/**
 * A resumed run's schedule: the saved one, with the decay settings of this session; a learning rate given
 * explicitly restarts the schedule from it (fine-tuning with a lower rate). Returns what changed, for the log.
 */
export function resumeSchedule(
  saved: ScheduleState,
  s: Pick<OptimSettings, "learningRate" | "lrGamma" | "lrSchedulerInterval">,
  learningRateGiven: boolean,
): string[] {
  const changes: string[] = [];
  if (learningRateGiven && s.learningRate !== saved.lr) {
    changes.push(`learning rate ${saved.lr} -> ${s.learningRate}`);
    saved.lr = s.learningRate;
    saved.base_lr = s.learningRate;
  }
  if (s.lrGamma !== saved.gamma) changes.push(`decay factor ${saved.gamma} -> ${s.lrGamma}`);
  if (s.lrSchedulerInterval !== saved.interval) {
    changes.push(`decay interval ${saved.interval} -> ${s.lrSchedulerInterval} epochs`);
  }
  saved.gamma = s.lrGamma;
  saved.interval = s.lrSchedulerInterval;
  return changes;
}
