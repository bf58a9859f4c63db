/**
 * One epoch: training over the sampler's batches (resumable mid-epoch), and the validation pass.
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import { relativeL2Loss } from "../model/gino.ts";
import { predictWindow } from "../model/residual.ts";
import type { Batch } from "../data/batch.ts";
import { trainStep } from "./step.ts";
import { ProgressBar } from "./progress.ts";
import { testSignalStep } from "./stopping.ts";
import { countsPer } from "../model/gpu/runtime.ts";
import type { GpuCounters } from "../model/gpu/runtime.ts";
import type { Session, SessionParts } from "./session.ts";
import { lrAt, noteStepRate } from "./schedule.ts";
import { BudgetProbe } from "./budget.ts";
import { CollectiveStall, noteStep } from "../parallel/world.ts";

/** A batch as tensors: inputs [B, N, C * Tin], targets [B, N, C * Tout]. */
const tensorsOf = (b: Batch) => {
  const cin = b.inputs.length / (b.b * b.n), cout = b.targets.length / (b.b * b.n);
  return [tf.tensor3d(b.inputs, [b.b, b.n, cin]), tf.tensor3d(b.targets, [b.b, b.n, cout])] as const;
};

/** How {@linkcode trainEpoch} ended: the epoch's batches are done, a stop was asked for, or the loss diverged. */
export type EpochEnd = "done" | "stop" | { diverged: number };

/** Trains the rest of the current epoch (from where the sampler is), step by step. */
export async function trainEpoch(ses: Session): Promise<EpochEnd> {
  const { state, sampler, stop } = ses;
  const epochStart = performance.now() - state.partial_epoch.seconds * 1000;
  const bar = new ProgressBar(Deno.stdout.isTerminal() && !ses.log.quiet);
  const signalAfter = testSignalStep();
  const reads = new LossReads(ses);
  const probe = BudgetProbe.of(ses);
  const work = ses.engine ? new StepWork(ses) : undefined;
  /** Accounts for steps whose losses are known (batch sizes, losses, time each); a diverged loss ends the epoch. */
  const account = (sizes: number[], losses: number[], ms: number): EpochEnd | undefined => {
    for (let i = 0; i < sizes.length; i++) {
      if (!Number.isFinite(losses[i])) return { diverged: losses[i] };
      state.partial_epoch.loss_sum += losses[i] * sizes[i];
      state.partial_epoch.samples += sizes[i];
      noteStepRate(state.scheduler, lrAt(state.scheduler, state.global_step));
      state.step_in_epoch++;
      state.global_step++;
      stop.afterStep(ms);
      probe?.afterStep(ms);
      noteStep(ses.world);
      if (signalAfter?.step === state.global_step) Deno.kill(Deno.pid, signalAfter.signal);
    }
    state.partial_epoch.seconds = (performance.now() - epochStart) / 1000;
    bar.update(
      state.epoch + 1,
      ses.policy.epochs,
      state.step_in_epoch,
      sampler.batchesPerEpoch,
      state.partial_epoch.loss_sum / state.partial_epoch.samples,
      stop.stepMs,
    );
    return undefined;
  };
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const ts = performance.now();
    const batch = ses.assembler.assemble("train", sb);
    // the rate of this step: a function of the schedule and the step's index (steps queued on the GPU count)
    ses.adam.lr = lrAt(state.scheduler, state.global_step + reads.pending);
    if (ses.engine) {
      // the step is queued on the GPU; its loss is read back with others' (every few steps, and before a stop)
      await untaken(sampler, engineStep(ses, batch));
      reads.queued(batch.b);
      work!.steps++;
      const last = sampler.position >= sampler.batchesPerEpoch;
      // (each step is read while a time budget's plan waits for step times)
      const all = last || !!stop.reason || !!probe?.waiting;
      if (!all && !reads.due()) continue;
      const r = await reads.read(all);
      const end = account(r.sizes, r.losses, r.ms);
      if (end) return end;
      await probe?.maybePlan();
    } else {
      const loss = await untaken(sampler, step(ses, batch));
      const end = account([batch.b], [loss], performance.now() - ts);
      if (end) return end;
      await probe?.maybePlan();
    }
    // let a pending signal's handler run before the next step starts (the step reads only its loss back)
    await new Promise((r) => setTimeout(r, signalAfter !== undefined ? 20 : 0));
    if (await stop.sync(ses.world)) {
      // the steps still queued on the GPU are taken: their losses are read before the state is saved
      if (ses.engine && reads.pending) {
        const r = await reads.read(true);
        const end = account(r.sizes, r.losses, r.ms);
        if (end) return end;
      }
      break;
    }
  }
  work?.end();
  bar.clear();
  return sampler.position < sampler.batchesPerEpoch ? "stop" : "done";
}

/**
 * A step whose gradient all-reduce was given up (a rank stopped answering) was not taken on any rank: its batch goes
 * back to the sampler, so that the state saved is the last completed step's and a resume takes this batch again.
 */
async function untaken<T>(sampler: Session["sampler"], step: Promise<T>): Promise<T> {
  try {
    return await step;
  } catch (e) {
    if (e instanceof CollectiveStall) sampler.unread();
    throw e;
  }
}

/**
 * When the GPU engine's training losses are read back: every `--log-every` steps, or (by default) about once a
 * second at the measured step time (at most every 256 steps); every step in a data-parallel run (whose steps read
 * their gradients back anyway, and whose ranks agree on stopping after each step). A read in the middle of an epoch
 * takes the losses of the steps asked for at the read before, so the GPU never waits for the host (the losses come
 * one read late); the epoch's last step, a stop and a time budget's planning read every step taken.
 */
class LossReads {
  /** Windows of each step taken whose loss is not yet accounted, in order. */
  #sizes: number[] = [];
  #since = performance.now();
  #taken = 0;
  #every = 1;

  constructor(readonly ses: Session) {
    const given = ses.s.run.logEvery;
    if (ses.world.size > 1) this.#every = 1;
    else if (given) this.#every = given;
  }

  /** Notes a queued step of `size` windows. */
  queued(size: number): void {
    this.#sizes.push(size);
    this.#taken++;
  }

  /** True when the queued steps' losses are to be read now. */
  due(): boolean {
    return this.#taken >= this.#every;
  }

  /** Steps taken whose losses are not accounted yet. */
  get pending(): number {
    return this.#sizes.length;
  }

  /**
   * The losses read now (all steps taken with `all`, else those of earlier steps); with their sizes and the time
   * per step since the last read.
   */
  async read(all: boolean): Promise<{ sizes: number[]; losses: number[]; ms: number }> {
    const engine = this.ses.engine!;
    const { losses } = all || this.ses.world.size > 1
      ? await engine.readLosses()
      : await engine.readEarlierLosses();
    const sizes = this.#sizes.splice(0, losses.length), now = performance.now();
    const ms = (now - this.#since) / Math.max(1, this.#taken);
    this.#taken = 0;
    this.#since = now;
    if (this.ses.world.size === 1 && !this.ses.s.run.logEvery) {
      this.#every = Math.max(1, Math.min(256, Math.floor(1000 / Math.max(ms, 1e-3))));
    }
    return { sizes, losses, ms };
  }
}

/** What the GPU engine was asked over an epoch's training steps, per step (into `ses.gpuPerStep`). */
class StepWork {
  steps = 0;
  #before: GpuCounters;

  constructor(readonly ses: Session) {
    this.#before = { ...ses.engine!.counters };
  }

  end(): void {
    if (!this.steps) return;
    this.ses.gpuPerStep = countsPer(this.ses.engine!.counters, this.#before, this.steps);
  }
}

/** One training step queued on the GPU engine. */
async function engineStep(ses: Session, batch: Batch): Promise<void> {
  const o = ses.s.optim;
  await ses.engine!.trainStep(
    ses.geometries[batch.patch],
    batch.inputs,
    batch.targets,
    batch.b,
    batch.nCore,
    ses.micro,
    ses.adam,
    {
      clipNorm: o.gradClipNorm,
      lossEps: o.lossEps,
      residual: ses.residual,
      share: { index: ses.world.rank, count: ses.world.size },
      world: ses.world,
    },
  );
}

/** One training step on a batch through tfjs ops (`train/step.ts`): its loss. */
async function step(ses: Session, batch: Batch): Promise<number> {
  const o = ses.s.optim;
  const geom = ses.geometries[batch.patch];
  const [x, y] = tensorsOf(batch);
  try {
    return await trainStep(ses.model, geom, x, y, batch.nCore, ses.micro, ses.adam, {
      clipNorm: o.gradClipNorm,
      lossEps: o.lossEps,
      residual: ses.residual,
      share: { index: ses.world.rank, count: ses.world.size },
      reduce: ses.reduce,
    });
  } finally {
    tf.dispose([x, y]);
  }
}

/** The validation losses: over all validation windows (the mean over windows, as training), and per column. */
export interface Evaluation {
  /** Relative L2 loss over all target columns. */
  loss: number;
  /** The same loss per target column. */
  perColumn: Record<string, number>;
}

/** Validation over all validation windows (the micro-batches shared out over the ranks, the sums reduced). */
export async function evaluate(p: SessionParts): Promise<Evaluation> {
  const { model, valSampler: sampler, assembler, valMicro: micro, residual } = p;
  const cols = p.s.data.targetCols, tout = p.s.data.outputWindow;
  sampler.beginEpoch();
  let sum = 0, n = 0, index = 0;
  const perCol = new Array(cols.length).fill(0);
  const { rank, size } = p.world;
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const batch = assembler.assemble("val", sb);
    if (p.engine) {
      n += await p.engine.evaluate(
        p.geometries[sb.patch],
        batch.inputs,
        batch.targets,
        batch.b,
        batch.nCore,
        micro,
        {
          lossEps: p.s.optim.lossEps,
          residual,
          share: { index: rank, count: size },
          groups: cols.length,
          tout,
        },
      );
      continue;
    }
    const [x, y] = tensorsOf(batch);
    for (let s0 = 0; s0 < batch.b; s0 += micro) {
      if (index++ % size !== rank) continue; // another rank's micro-batch
      const m = Math.min(micro, batch.b - s0);
      const stacked = tf.tidy(() => {
        const xs = x.slice([s0, 0, 0], [m, -1, -1]), ys = y.slice([s0, 0, 0], [m, -1, -1]);
        const pred = predictWindow(model, p.geometries[sb.patch], xs, residual);
        const loss = (a: tf.Tensor3D, b: tf.Tensor3D) => relativeL2Loss(a, b, batch.nCore, p.s.optim.lossEps);
        const out = [loss(pred, ys)];
        if (cols.length > 1) {
          cols.forEach((_, c) => {
            const part = (t: tf.Tensor3D) => t.slice([0, 0, c * tout], [-1, -1, tout]);
            out.push(loss(part(pred), part(ys)));
          });
        }
        return tf.stack(out);
      });
      const vals = Array.from(await stacked.data());
      stacked.dispose();
      sum += vals[0] * m;
      for (let c = 0; c < cols.length; c++) perCol[c] += (cols.length > 1 ? vals[c + 1] : vals[0]) * m;
      n += m;
    }
    tf.dispose([x, y]);
  }
  if (p.engine) {
    // the batches' sums, read back once for the whole pass and added in batch order
    for (const sums of await p.engine.readEvaluation()) {
      sum += sums[0];
      for (let c = 0; c < cols.length; c++) perCol[c] += cols.length > 1 ? sums[c + 1] : sums[0];
    }
  }
  if (size > 1) {
    const sums = Float64Array.from([sum, n, ...perCol]);
    await p.world.allreduceSum64(sums, "the all-reduce of the validation losses");
    [sum, n] = [sums[0], sums[1]];
    for (let c = 0; c < cols.length; c++) perCol[c] = sums[2 + c];
  }
  const perColumn: Record<string, number> = {};
  cols.forEach((c, i) => (perColumn[c] = n ? perCol[i] / n : NaN));
  return { loss: n ? sum / n : NaN, perColumn };
}
