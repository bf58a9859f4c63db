/**
 * The gradient reduction of data-parallel training: every rank's gradient sum and loss share, summed over the
 * ranks in one all-reduce of one flat buffer (and one of the loss), so every rank gets the gradient of the whole
 * batch and applies the same update.
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import type { BatchGradients, GradientReduction } from "./step.ts";
import type { World } from "../parallel/world.ts";

/** Timings and sizes of the reductions so far (for the benchmark). */
export interface ReductionStats {
  /** Reductions done. */
  calls: number;
  /** Milliseconds spent in the all-reduces (waiting for other ranks included). */
  ms: number;
  /** Bytes of the last reduction's buffer. */
  bytes: number;
}

/** A reduction over the ranks of `world` (the identity for one process). */
export function allReduceGradients(world: World, stats?: ReductionStats): GradientReduction | undefined {
  if (world.size === 1) return undefined;
  let flat = new Float32Array(0);
  return async (g: BatchGradients): Promise<BatchGradients> => {
    const sizes = g.grads.map((t) => t.size);
    const total = sizes.reduce((a, b) => a + b, 0);
    if (flat.length !== total) flat = new Float32Array(total);
    let at = 0;
    for (const t of g.grads) {
      flat.set(await t.data() as Float32Array, at);
      at += t.size;
    }
    let share = 0;
    if (g.losses.length) {
      const stacked = tf.stack(g.losses);
      for (const v of await stacked.data()) share += v;
      stacked.dispose();
    }
    const loss = new Float64Array([share]);
    const t0 = performance.now();
    await world.allreduceSum(flat, "the all-reduce of a step's gradients");
    await world.allreduceSum64(loss, "the all-reduce of a step's loss");
    if (stats) {
      stats.calls++;
      stats.ms += performance.now() - t0;
      stats.bytes = flat.byteLength;
    }
    at = 0;
    const grads = g.grads.map((t) => {
      const out = tf.tensor(flat.subarray(at, at + t.size), t.shape);
      at += t.size;
      return out;
    });
    tf.dispose([...g.grads, ...g.losses]);
    return { grads, losses: [], loss: loss[0] };
  };
}
