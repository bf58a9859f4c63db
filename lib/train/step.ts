/**
 * One training step of a GINO on one batch, in three parts: the gradients of the batch's loss
 * ({@linkcode batchGradients}: forward, relative L2 loss on the core points, backward, in micro-batches whose
 * gradients are summed, which bounds memory: the wasm heap is limited to 4 GiB), a reduction (the identity in one
 * process; a sum over processes in data-parallel training), and the update ({@linkcode applyGradients}: the one
 * read of the loss, optional gradient clipping, Adam).
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import { predictWindow } from "../model/residual.ts";
import type { ResidualSpec } from "../model/residual.ts";
import type { Gino, GinoGeometry } from "../model/gino.ts";
import type { Adam } from "./adam.ts";
import { relativeL2Loss } from "../model/gino.ts";
import { part } from "../model/parts.ts";

/** How a batch's loss is computed. */
export interface LossOptions {
  /** Predict the change from the last input step (see {@linkcode predictWindow}). */
  residual?: ResidualSpec;
  /** Epsilon of the relative L2 loss's denominator (0 = the reference). */
  lossEps?: number;
}

/** Options of {@linkcode trainStep}. */
export interface StepOptions extends LossOptions {
  /** Which micro-batches this process computes (data-parallel training); default all. */
  share?: BatchShare;
  /** Clip the global gradient norm to this value (off when undefined). */
  clipNorm?: number;
  /** Called with the global gradient norm before it is clipped (for inspection). */
  onGradNorm?: (norm: number) => void;
  /** The reduction between computing and applying gradients (default: none; data-parallel runs sum over ranks). */
  reduce?: GradientReduction;
}

/** The gradients of one batch, and its loss still on the device (one value per micro-batch). */
export interface BatchGradients {
  /** Gradient of the batch's loss per variable, in the order of `model.variables`. */
  grads: tf.Tensor[];
  /** Each micro-batch's share of the batch loss (loss x micro-batch size / batch size); they sum to the loss. */
  losses: tf.Scalar[];
  /** The batch loss already read back (a reduction over processes sets it); then `losses` is empty. */
  loss?: number;
}

/** Which micro-batches of a batch this process computes: those whose index is `index` modulo `count`. */
export interface BatchShare {
  /** This process's rank. */
  index: number;
  /** Processes sharing each batch. */
  count: number;
}

/**
 * Between computing a batch's gradients and applying them: the identity in one process; a sum over processes in
 * data-parallel training. Takes ownership of its argument's tensors.
 */
export type GradientReduction = (g: BatchGradients) => BatchGradients | Promise<BatchGradients>;

/**
 * The gradients of the loss of one batch: x [B, N, Cin], y [B, N, Cout], loss over the first `coreLen` points,
 * computed in micro-batches of `microBatch` windows whose gradients are summed (equal to the whole batch's). Reads
 * nothing back from the device.
 */
export function batchGradients(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  y: tf.Tensor3D,
  coreLen: number,
  microBatch: number,
  options: LossOptions = {},
  share: BatchShare = { index: 0, count: 1 },
): BatchGradients {
  const b = x.shape[0];
  const vars = model.variables;
  const losses: tf.Scalar[] = [];
  let acc: tf.Tensor[] | undefined;
  for (let s = 0, i = 0; s < b; s += microBatch, i++) {
    if (i % share.count !== share.index) continue; // another process's micro-batch
    const m = Math.min(microBatch, b - s);
    const { value, grads } = tf.tidy(() => {
      const xs = m === b ? x : x.slice([s, 0, 0], [m, -1, -1]);
      const ys = m === b ? y : y.slice([s, 0, 0], [m, -1, -1]);
      const pred = () => predictWindow(model, geom, xs, options.residual);
      const loss = () => {
        const p = pred();
        return part(
          "loss",
          () => tf.mul(relativeL2Loss(p, ys, coreLen, options.lossEps ?? 0), m / b) as tf.Scalar,
        );
      };
      return tf.variableGrads(loss, vars);
    });
    losses.push(value);
    const list = vars.map((v) => grads[v.name]);
    if (!acc) acc = list;
    else {
      const prev = acc;
      acc = part("gradient accumulation", () => prev.map((a, i) => tf.add(a, list[i])));
      tf.dispose([...prev, ...list]);
    }
  }
  return { grads: acc ?? vars.map((v) => tf.zerosLike(v)), losses };
}

/**
 * Applies a batch's gradients: reads the loss (the one value read back per step, asynchronously, as GPU backends
 * need), and when it is finite clips the global gradient norm (if asked) and takes an optimiser step. Returns the
 * loss; a non-finite loss leaves the weights untouched. Disposes the gradients.
 */
export async function applyGradients(
  g: BatchGradients,
  optimizer: Adam,
  options: StepOptions = {},
): Promise<number> {
  let grads = g.grads;
  let loss = g.loss ?? 0;
  if (g.loss === undefined && g.losses.length) {
    const stacked = tf.stack(g.losses);
    for (const v of await stacked.data()) loss += v;
    stacked.dispose();
  }
  tf.dispose(g.losses);
  if (Number.isFinite(loss)) {
    if (options.clipNorm !== undefined || options.onGradNorm) {
      const clipped = await clipByGlobalNorm(grads, options.clipNorm ?? Infinity);
      options.onGradNorm?.(clipped.norm);
      grads = clipped.grads;
    }
    part("optimizer", () => optimizer.apply(grads));
  }
  tf.dispose(grads);
  return loss;
}

/**
 * Scales gradients so that their global L2 norm is at most `maxNorm` (as PyTorch's `clip_grad_norm_`: by
 * `maxNorm / (norm + 1e-6)` when the norm exceeds it). Returns the gradients (the same tensors when unscaled; the
 * given ones are disposed when scaled) and the norm before clipping.
 */
export async function clipByGlobalNorm(
  grads: tf.Tensor[],
  maxNorm: number,
): Promise<{ grads: tf.Tensor[]; norm: number }> {
  // (a sum of the stacked squares: tfjs-backend-webgpu's addN of this many tensors returns 0)
  const normT = tf.tidy(() => tf.sqrt(tf.sum(tf.stack(grads.map((t) => tf.sum(tf.square(t)))))));
  const norm = (await normT.data())[0];
  normT.dispose();
  if (!(norm > maxNorm)) return { grads, norm };
  const scaled = grads.map((t) => tf.mul(t, maxNorm / (norm + 1e-6)));
  tf.dispose(grads);
  return { grads: scaled, norm };
}

/**
 * Trains on one batch: gradients (in micro-batches), reduction, update. Returns the batch's loss (the mean over
 * windows and core points); a non-finite loss is returned without updating the weights.
 */
export async function trainStep(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  y: tf.Tensor3D,
  coreLen: number,
  microBatch: number,
  optimizer: Adam,
  options: StepOptions = {},
): Promise<number> {
  const g = batchGradients(model, geom, x, y, coreLen, microBatch, options, options.share);
  return await applyGradients(options.reduce ? await options.reduce(g) : g, optimizer, options);
}

/**
 * The micro-batch size for `ranks` processes sharing each batch of `batch` windows, at most `micro`: the number of
 * micro-batches rounded up to a multiple of the ranks, so that every rank gets the same number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shareMicroBatch } from "./step.ts";
 * assert.equal(shareMicroBatch(3, 8, 2), 2); // 4 micro-batches of 2: two per rank (not 3 + 3 + 2)
 * assert.equal(shareMicroBatch(8, 8, 1), 8);
 * ```
 */
export function shareMicroBatch(micro: number, batch: number, ranks: number): number {
  const parts = Math.ceil(Math.ceil(batch / micro) / ranks) * ranks;
  return Math.max(1, Math.ceil(batch / parts));
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
