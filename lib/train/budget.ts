/**
 * `--time-budget`: how long a run trains is planned from measured times instead of `--epochs`. After the first few
 * steps of a run (the very first, which compiles kernels, left out), the step time, an estimate of validation and
 * checkpoint time, and what is spent already give the whole epochs that fit the budget; the cosine schedule is laid
 * over them, so the learning rate has annealed when the budget ends. At the end of the first epoch its measured
 * time refines the plan once, before the first checkpoint is written: every checkpoint holds the final plan, and a
 * resumed run follows it.
 *
 * @module
 */

import { applyBudgetPlan, planTimeBudget } from "./schedule.ts";
import type { BudgetPlan } from "./schedule.ts";
import { trainingSeconds } from "./history.ts";
import { bcastString } from "../parallel/world.ts";
import type { Session } from "./session.ts";

/** Steps timed before the first plan, besides the first of the session. */
const PROBE_STEPS = 3;

/** The first plan of a time-budget run, from the times of its first steps. */
export class BudgetProbe {
  #times: number[] = [];

  private constructor(readonly ses: Session) {}

  /** A probe for a session whose budget is not planned yet; undefined otherwise. */
  static of(ses: Session): BudgetProbe | undefined {
    return ses.state.scheduler.budget === null ? new BudgetProbe(ses) : undefined;
  }

  /** True while the plan waits for step times. */
  get waiting(): boolean {
    return this.ses.state.scheduler.budget === null;
  }

  /** Notes a step's time. */
  afterStep(ms: number): void {
    if (this.waiting) this.#times.push(ms);
  }

  /** Plans the run once enough steps are timed (or the epoch ends first: its steps are what there is). */
  async maybePlan(): Promise<void> {
    const ses = this.ses;
    const epochDone = ses.sampler.position >= ses.sampler.batchesPerEpoch;
    if (!this.waiting || (this.#times.length < PROBE_STEPS + 1 && !epochDone)) return;
    const times = this.#times.length > 1 ? this.#times.slice(1) : this.#times;
    const stepMs = median(times);
    ses.firstStepExtraMs = Math.max(0, this.#times[0] - stepMs);
    const valBatches = ses.valSampler.totalWindows / ses.s.data.batchSize;
    await makePlan(ses, {
      stepMs,
      // a training batch's windows validate in about half a step, shared out over the ranks
      valMs: (0.5 * stepMs * valBatches) / ses.world.size,
      saveMs: estimatedSaveMs(ses),
    }, false);
  }
}

/**
 * At the end of the first epoch of a time-budget run (before its checkpoint): the plan again from the epoch's
 * measured time (training steps without the first step's extra, validation), so that the later epochs fit.
 */
export async function refineBudget(ses: Session, epochSeconds: number): Promise<void> {
  const plan = ses.state.scheduler.budget;
  if (!plan || plan.refined) return;
  const measured = Math.max(1e-3, epochSeconds * 1000 - (ses.firstStepExtraMs ?? 0));
  await makePlan(
    ses,
    {
      stepMs: plan.step_ms,
      epochMs: measured + estimatedSaveMs(ses),
    },
    true,
    epochSeconds,
  );
}

/** Makes and applies a plan (rank 0's, the same on every rank) and says so in the log. */
async function makePlan(
  ses: Session,
  t: { stepMs: number; valMs?: number; saveMs?: number; epochMs?: number },
  refined: boolean,
  /** The first epoch's seconds (a refined plan, made before the epoch is recorded). */
  firstEpochSeconds?: number,
): Promise<void> {
  const { state, s } = ses;
  const steps = ses.sampler.batchesPerEpoch;
  const budget = s.optim.timeBudget!;
  let plan: BudgetPlan = planTimeBudget(budget, {
    stepMs: t.epochMs !== undefined ? t.epochMs / steps : t.stepMs,
    stepsPerEpoch: steps,
    valMs: t.valMs ?? 0,
    saveMs: t.saveMs ?? 0,
    spentSeconds: refined
      ? firstEpochSeconds ?? state.history.epoch_seconds[0] ?? trainingSeconds(state)
      : trainingSeconds(state),
  });
  plan = { ...plan, step_ms: t.stepMs, refined };
  if (ses.world.size > 1) {
    plan = JSON.parse(
      await bcastString(ses.world, JSON.stringify(plan), 0, "the broadcast of the time budget's plan"),
    );
  }
  const before = state.scheduler.budget;
  applyBudgetPlan(state.scheduler, s.optim, plan, steps);
  s.optim.epochs = plan.epochs;
  state.config.optim.epochs = plan.epochs;
  ses.policy.epochs = plan.epochs;
  if (refined && before && before.epochs === plan.epochs) return;
  ses.log.info(
    `time budget ${budget} s: ${refined ? "the first epoch took" : "a step takes"} ~${
      refined
        ? plan.epoch_seconds.toFixed(1) + " s with validation and checkpoints"
        : t.stepMs.toFixed(0) + " ms"
    }; ${refined && before ? `re-planned ${before.epochs} ->` : "planned"} ${plan.epochs} epoch(s) ` +
      `(${plan.epochs * steps} steps), the learning rate annealed at their end`,
  );
  const oneEpoch = plan.epoch_seconds;
  if (oneEpoch > budget) {
    ses.log.warn(
      `warning: one epoch takes ~${
        oneEpoch.toFixed(0)
      } s, more than --time-budget ${budget} s; training one ` +
        `epoch (a smaller model, fewer patches or a larger budget fit better)`,
    );
  }
}

/** A checkpoint's files at an epoch's end (latest and best: model and Adam's two moments) at ~300 MB/s. */
function estimatedSaveMs(ses: Session): number {
  const bytes = ses.model.parameterCount * 4 * 3 * 2;
  return 300 + bytes / 3e5;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}
