/**
 * The learning-rate schedule, one of:
 *
 * - `cosine` (the default): per step, a linear warm-up from `peak / W` to the peak rate over the first W steps,
 *   then a cosine from the peak down to `final x peak` at the run's last step. The run's length in steps is the
 *   plan (`total_steps`): `--epochs` x batches per epoch, or, with `--time-budget`, what the measured step times say
 *   fits the budget (see {@linkcode planTimeBudget}). So the rate has annealed when the run ends, and the last
 *   epochs settle instead of jumping.
 * - `exponential`: the reference training script's schedule, exactly: PyTorch's ExponentialLR stepped every
 *   `--lr-scheduler-interval` epochs, i.e. the rate of epoch e (1-based) is `lr0 * gamma^floor((e - 1) / interval)`.
 * - `constant`: the peak rate throughout.
 *
 * Its state travels in every checkpoint and the rate of a step is a function of that state and the step's index
 * alone, so a resumed run continues exactly where it was.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { freshSchedule, lrAt } from "./schedule.ts";
 * const s = freshSchedule({ lrSchedule: "cosine", learningRate: 1e-3, lrWarmup: 0.1, lrFinal: 0.01 }, 100);
 * assert.ok(Math.abs(lrAt(s, 9) - 1e-3) < 1e-12); // warm-up ends at step 10 of 100
 * assert.ok(Math.abs(lrAt(s, 99) - 1e-5) < 1e-9); // annealed to 1% at the last step
 * ```
 *
 * @module
 */

import type { OptimSettings } from "./settings.ts";

/** The kinds of schedule. */
export const LR_SCHEDULES = ["cosine", "exponential", "constant"] as const;

/** One of {@linkcode LR_SCHEDULES}. */
export type LrSchedule = typeof LR_SCHEDULES[number];

/** Saved state of the schedule. */
export interface ScheduleState {
  /** Which schedule (checkpoints written before there was a choice hold none: `exponential`). */
  kind?: LrSchedule;
  /** `exponential`: the rate of the next epoch; otherwise the rate of the last step taken. */
  lr: number;
  /** The rate the schedule started from: the peak of `cosine`. */
  base_lr: number;
  /** `exponential`: decay factor. */
  gamma: number;
  /** `exponential`: epochs between decays. */
  interval: number;
  /** `cosine`: warm-up steps. */
  warmup_steps?: number;
  /** `cosine`: the planned steps of the run (the rate is `final_lr` from the last of them on). */
  total_steps?: number;
  /** `cosine`: the rate at the end. */
  final_lr?: number;
  /** With `--time-budget`: what the plan was made from, once made (epochs, seconds per epoch); null until then. */
  budget?: BudgetPlan | null;
}

/** How a `--time-budget` became a number of epochs. */
export interface BudgetPlan {
  /** The budget, seconds. */
  seconds: number;
  /** Epochs planned. */
  epochs: number;
  /** Estimated seconds of one epoch (steps, validation and checkpoint). */
  epoch_seconds: number;
  /** Estimated milliseconds of one training step. */
  step_ms: number;
  /** True once the first epoch's measured time has replaced the first estimate (made after a few steps). */
  refined?: boolean;
}

/** The settings a schedule is made from. */
export type ScheduleSettings =
  & Pick<OptimSettings, "lrSchedule" | "learningRate" | "lrWarmup" | "lrFinal">
  & Partial<Pick<OptimSettings, "lrGamma" | "lrSchedulerInterval">>;

/** The kind of a saved schedule. */
export const kindOf = (s: ScheduleState): LrSchedule => s.kind ?? "exponential";

/** The schedule of a new run of `totalSteps` steps. */
export function freshSchedule(s: ScheduleSettings, totalSteps: number): ScheduleState {
  const state: ScheduleState = {
    kind: s.lrSchedule,
    lr: s.learningRate,
    base_lr: s.learningRate,
    gamma: s.lrGamma ?? 0.95,
    interval: s.lrSchedulerInterval ?? 5,
  };
  if (s.lrSchedule === "cosine") {
    planSteps(state, s, totalSteps);
    state.lr = lrAt(state, 0);
  }
  return state;
}

/** Sets the plan of a cosine schedule: `total` steps, the warm-up a share of them, the final rate. */
function planSteps(
  state: ScheduleState,
  s: Pick<ScheduleSettings, "lrWarmup" | "lrFinal">,
  total: number,
): void {
  state.total_steps = Math.max(1, Math.round(total));
  state.warmup_steps = Math.min(state.total_steps, Math.max(0, Math.round(s.lrWarmup * state.total_steps)));
  state.final_lr = s.lrFinal * state.base_lr;
}

/** The learning rate of step `step` (0-based over the whole run). */
export function lrAt(state: ScheduleState, step: number): number {
  const kind = kindOf(state);
  if (kind === "exponential") return state.lr;
  if (kind === "constant") return state.base_lr;
  const peak = state.base_lr, W = state.warmup_steps ?? 0, T = state.total_steps ?? 1;
  const floor = state.final_lr ?? 0;
  if (step < W) return (peak * (step + 1)) / W;
  const p = T - 1 > W ? Math.min(1, (step - W) / (T - 1 - W)) : 1;
  return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
}

/** After epoch `epoch` (1-based) ends: `exponential` decays the rate when the interval says so. */
export function stepSchedule(state: ScheduleState, epoch: number): void {
  if (kindOf(state) === "exponential" && epoch % state.interval === 0) state.lr *= state.gamma;
}

/**
 * A resumed run's schedule: the saved one, with the settings of this session. A learning rate given explicitly
 * restarts the rate from it (the peak of `cosine`; fine-tuning with a lower rate); another kind of schedule, other
 * decay settings or another length of run (`totalSteps`: `--epochs` x batches per epoch) re-plan it from here. Returns
 * what changed, for the log.
 */
export function resumeSchedule(
  saved: ScheduleState,
  s: ScheduleSettings,
  learningRateGiven: boolean,
  totalSteps: number,
): string[] {
  const changes: string[] = [];
  if (s.lrSchedule !== kindOf(saved)) {
    changes.push(`schedule ${kindOf(saved)} -> ${s.lrSchedule}`);
    saved.kind = s.lrSchedule;
    saved.base_lr = saved.lr;
  }
  if (learningRateGiven && s.learningRate !== saved.base_lr) {
    changes.push(`learning rate ${saved.base_lr} -> ${s.learningRate}`);
    saved.lr = s.learningRate;
    saved.base_lr = s.learningRate;
  }
  if (kindOf(saved) === "exponential") {
    const gamma = s.lrGamma ?? saved.gamma, interval = s.lrSchedulerInterval ?? saved.interval;
    if (gamma !== saved.gamma) changes.push(`decay factor ${saved.gamma} -> ${gamma}`);
    if (interval !== saved.interval) changes.push(`decay interval ${saved.interval} -> ${interval} epochs`);
    saved.gamma = gamma;
    saved.interval = interval;
  } else if (kindOf(saved) === "cosine") {
    const before = { ...saved };
    planSteps(saved, s, saved.budget ? (before.total_steps ?? totalSteps) : totalSteps);
    if (before.total_steps !== saved.total_steps) {
      changes.push(`run length ${before.total_steps ?? "-"} -> ${saved.total_steps} steps`);
    }
    if (before.final_lr !== undefined && Math.abs(before.final_lr - saved.final_lr!) > 1e-15) {
      changes.push(`final rate ${before.final_lr} -> ${saved.final_lr}`);
    }
    if (before.warmup_steps !== undefined && before.warmup_steps !== saved.warmup_steps) {
      changes.push(`warm-up ${before.warmup_steps} -> ${saved.warmup_steps} steps`);
    }
  }
  return changes;
}

/** A one-line description of a schedule, for logs and `ckpt show`. */
export function describeSchedule(s: ScheduleState): string {
  const kind = kindOf(s);
  if (kind === "exponential") {
    return `exponential: lr ${s.lr} (base ${s.base_lr}, x${s.gamma} every ${s.interval} epochs)`;
  }
  if (kind === "constant") return `constant: lr ${s.base_lr}`;
  const budget = s.budget
    ? `; planned for a time budget of ${s.budget.seconds} s: ${s.budget.epochs} epochs of ~${
      s.budget.epoch_seconds.toFixed(1)
    } s`
    : s.budget === null
    ? "; planned for a time budget once the first steps are timed"
    : "";
  return `cosine: peak ${s.base_lr} after ${s.warmup_steps} warm-up steps, down to ${s.final_lr} at step ` +
    `${s.total_steps}${budget}`;
}

/**
 * The plan of a `--time-budget` run: how many whole epochs fit the budget at the measured times, at least one.
 * `stepMs` is the time of a training step, `valMs` of a validation pass, `saveMs` of the checkpoint writes of an
 * epoch, `spentSeconds` what training has already used.
 */
export function planTimeBudget(
  budgetSeconds: number,
  t: { stepMs: number; stepsPerEpoch: number; valMs: number; saveMs: number; spentSeconds: number },
): BudgetPlan {
  const epochSeconds = (t.stepMs * t.stepsPerEpoch + t.valMs + t.saveMs) / 1000;
  // the first epoch's time is partly spent already: the budget left holds its rest and the whole later epochs
  const firstRest = Math.max(0, epochSeconds - t.spentSeconds);
  const later = Math.floor((budgetSeconds - t.spentSeconds - firstRest) / Math.max(epochSeconds, 1e-9));
  return {
    seconds: budgetSeconds,
    epochs: Math.max(1, 1 + Math.max(0, later)),
    epoch_seconds: epochSeconds,
    step_ms: t.stepMs,
  };
}

/** Sets a cosine schedule's plan from a time budget's (its length in steps). */
export function applyBudgetPlan(
  state: ScheduleState,
  s: Pick<ScheduleSettings, "lrWarmup" | "lrFinal">,
  plan: BudgetPlan,
  stepsPerEpoch: number,
): void {
  state.budget = plan;
  if (kindOf(state) === "cosine") planSteps(state, s, plan.epochs * stepsPerEpoch);
}

/** Notes the rate a step was taken with (the state's `lr`, for checkpoints and `ckpt show`). */
export function noteStepRate(state: ScheduleState, lr: number): void {
  if (kindOf(state) !== "exponential") state.lr = lr;
}
