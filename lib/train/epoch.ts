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
import type { Session, SessionParts } from "./session.ts";

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
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const ts = performance.now();
    const batch = ses.assembler.assemble("train", sb);
    const loss = await step(ses, batch);
    if (!Number.isFinite(loss)) return { diverged: loss };
    state.partial_epoch.loss_sum += loss * batch.b;
    state.partial_epoch.samples += batch.b;
    state.step_in_epoch++;
    state.global_step++;
    state.partial_epoch.seconds = (performance.now() - epochStart) / 1000;
    stop.afterStep(performance.now() - ts);
    const running = state.partial_epoch.loss_sum / state.partial_epoch.samples;
    bar.update(
      state.epoch + 1,
      ses.policy.epochs,
      state.step_in_epoch,
      sampler.batchesPerEpoch,
      running,
      stop.stepMs,
    );
    if (signalAfter?.step === state.global_step) Deno.kill(Deno.pid, signalAfter.signal);
    // let a pending signal's handler run before the next step starts (the step reads only its loss back)
    await new Promise((r) => setTimeout(r, signalAfter !== undefined ? 20 : 0));
    if (stop.sync(ses.world)) break;
  }
  bar.clear();
  return sampler.position < sampler.batchesPerEpoch ? "stop" : "done";
}

/** One training step on a batch: on the GPU engine (webgpu), else through tfjs ops (`train/step.ts`). */
async function step(ses: Session, batch: Batch): Promise<number> {
  const o = ses.s.optim;
  const options = {
    clipNorm: o.gradClipNorm,
    lossEps: o.lossEps,
    residual: ses.residual,
    share: { index: ses.world.rank, count: ses.world.size },
  };
  const geom = ses.geometries[batch.patch];
  if (ses.engine) {
    return await ses.engine.trainStep(
      geom,
      batch.inputs,
      batch.targets,
      batch.b,
      batch.nCore,
      ses.micro,
      ses.adam,
      {
        ...options,
        world: ses.world,
      },
    );
  }
  const [x, y] = tensorsOf(batch);
  try {
    return await trainStep(ses.model, geom, x, y, batch.nCore, ses.micro, ses.adam, {
      ...options,
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
  const { model, valSampler: sampler, assembler, micro, residual } = p;
  const cols = p.s.data.targetCols, tout = p.s.data.outputWindow;
  sampler.beginEpoch();
  let sum = 0, n = 0, index = 0;
  const perCol = new Array(cols.length).fill(0);
  const { rank, size } = p.world;
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const batch = assembler.assemble("val", sb);
    if (p.engine) {
      const r = await p.engine.evaluate(
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
      sum += r.sums[0];
      for (let c = 0; c < cols.length; c++) perCol[c] += cols.length > 1 ? r.sums[c + 1] : r.sums[0];
      n += r.windows;
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
  if (size > 1) {
    const sums = Float64Array.from([sum, n, ...perCol]);
    p.world.allreduceSum64(sums);
    [sum, n] = [sums[0], sums[1]];
    for (let c = 0; c < cols.length; c++) perCol[c] = sums[2 + c];
  }
  const perColumn: Record<string, number> = {};
  cols.forEach((c, i) => (perColumn[c] = n ? perCol[i] / n : NaN));
  return { loss: n ? sum / n : NaN, perColumn };
}
