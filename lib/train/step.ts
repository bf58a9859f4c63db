/**
 * One training step of a GINO on one batch: forward, relative L2 loss on the core points, backward, optional
 * gradient clipping, optimiser update. Large batches run as micro-batches whose gradients are accumulated (the
 * result equals the full batch's gradient), which bounds memory (the wasm heap is limited to 4 GiB).
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import type { Gino, GinoGeometry } from "../model/gino.ts";
import type { Adam } from "./adam.ts";
import { relativeL2Loss } from "../model/gino.ts";

/**
 * The latent grid the reference builds for a patch: per axis `linspace(min, max, G)` over the point cloud's
 * bounding box in float32 (computed as torch.linspace does), combined in ij order (z fastest). Flat [G1*G2*G3, 3].
 */
export function latentGrid(points: ArrayLike<number>, grid: number[]): Float32Array {
  const n = points.length / 3;
  const axes = [0, 1, 2].map((a) => {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = points[i * 3 + a];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return linspace32(Math.fround(lo), Math.fround(hi), grid[a]);
  });
  const [g1, g2, g3] = grid;
  const out = new Float32Array(g1 * g2 * g3 * 3);
  let o = 0;
  for (let i = 0; i < g1; i++) {
    for (let j = 0; j < g2; j++) {
      for (let k = 0; k < g3; k++) {
        out[o++] = axes[0][i];
        out[o++] = axes[1][j];
        out[o++] = axes[2][k];
      }
    }
  }
  return out;
}

/** torch.linspace in float32: start + step * i for the first half, end - step * (steps - 1 - i) for the rest. */
export function linspace32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const f = Math.fround;
  const step = f(f(end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < half ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1)));
  }
  return out;
}

/** Residual prediction: the model predicts the change from the last input step of each target column. */
export interface ResidualSpec {
  /** Target columns C. */
  cols: number;
  /** Input steps per column. */
  tin: number;
  /** Output steps per column. */
  tout: number;
}

/**
 * The model's prediction for x [B, N, C * Tin]: the GINO output, plus (with `residual`) the last input step of each
 * column repeated over the output window.
 */
export function predictWindow(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  residual?: ResidualSpec,
): tf.Tensor3D {
  const out = model.forwardGeometry(geom, x);
  if (!residual) return out;
  return tf.tidy(() => {
    const [b, n] = x.shape;
    const { cols, tin, tout } = residual;
    const last = x.reshape([b, n, cols, tin]).slice([0, 0, 0, tin - 1], [-1, -1, -1, 1]);
    return tf.add(out, tf.tile(last, [1, 1, 1, tout]).reshape([b, n, cols * tout])) as tf.Tensor3D;
  });
}

/** Options of {@linkcode trainStep}. */
export interface StepOptions {
  /** Predict the change from the last input step (see {@linkcode predictWindow}). */
  residual?: ResidualSpec;
  /** Clip the global gradient norm to this value (off when undefined). */
  clipNorm?: number;
  /** Epsilon of the relative L2 loss's denominator (0 = the reference). */
  lossEps?: number;
  /** Called with each micro-batch's gradients before they are applied (for inspection). */
  onGradNorm?: (norm: number) => void;
}

/**
 * Trains on one batch: x [B, N, Cin], y [B, N, Cout] (tensors), loss on the first `coreLen` points, in micro-batches
 * of `microBatch`. Returns the batch's loss (the mean over samples and core points). A non-finite loss is returned
 * without updating the weights.
 */
export function trainStep(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  y: tf.Tensor3D,
  coreLen: number,
  microBatch: number,
  optimizer: Adam,
  options: StepOptions = {},
): number {
  const b = x.shape[0];
  const vars = model.variables;
  let total = 0;
  let acc: tf.Tensor[] | undefined;
  for (let s = 0; s < b; s += microBatch) {
    const m = Math.min(microBatch, b - s);
    const { value, grads } = tf.tidy(() => {
      const xs = m === b ? x : x.slice([s, 0, 0], [m, -1, -1]);
      const ys = m === b ? y : y.slice([s, 0, 0], [m, -1, -1]);
      return tf.variableGrads(
        () =>
          tf.mul(
            relativeL2Loss(
              predictWindow(model, geom, xs, options.residual),
              ys,
              coreLen,
              options.lossEps ?? 0,
            ),
            m / b,
          ) as tf.Scalar,
        vars,
      );
    });
    total += value.dataSync()[0];
    value.dispose();
    const list = vars.map((v) => grads[v.name]);
    if (!acc) acc = list;
    else {
      const next = acc.map((a, i) => tf.add(a, list[i]));
      tf.dispose([...acc, ...list]);
      acc = next;
    }
  }
  let grads = acc!;
  if (options.clipNorm !== undefined || options.onGradNorm) {
    const norm = tf.tidy(() => tf.sqrt(tf.addN(grads.map((g) => tf.sum(tf.square(g)))))).dataSync()[0];
    options.onGradNorm?.(norm);
    if (options.clipNorm !== undefined && norm > options.clipNorm) {
      const scaled = grads.map((g) => tf.mul(g, options.clipNorm! / (norm + 1e-6)));
      tf.dispose(grads);
      grads = scaled;
    }
  }
  if (Number.isFinite(total)) optimizer.apply(grads);
  tf.dispose(grads);
  return total;
}

/**
 * Windows per forward/backward pass that keep the activations within about 1.2 GB (the wasm heap is 4 GiB): an
 * estimate from the latent grid, the width and each patch's points and edges.
 */
export function autoMicroBatch(
  patches: { n: number; edges: number }[],
  grid: number[],
  hidden: number,
  batch: number,
): number {
  const q = grid[0] * grid[1] * grid[2];
  let worst = 0;
  for (const p of patches) {
    const perWindow = 4 * (q * hidden * 40 + p.edges * (hidden + 16) * 4 + p.n * hidden * 12);
    worst = Math.max(worst, perWindow);
  }
  return Math.max(1, Math.min(batch, Math.floor(1.2e9 / Math.max(worst, 1))));
}
