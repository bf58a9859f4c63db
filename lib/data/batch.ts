/**
 * Batch assembly: the arrays a training step needs for one batch of windows of one patch, written into buffers
 * that are allocated once (for the largest patch) and reused for every batch.
 *
 * Shapes: `coords` [N, 3] (core points first, then ghost), `inputs` [B, N, C * Tin], `targets` [B, N, C * Tout],
 * with channel `c * Tin + i` holding step i of target column c.
 *
 * @module
 */

import type { Part, PatchDataset } from "./dataset.ts";
import type { SampledBatch } from "./sampler.ts";

/** One assembled batch. The arrays are views into the assembler's buffers, valid until its next call. */
export interface Batch {
  /** Index of the patch in the dataset. */
  patch: number;
  /** Windows in the batch, B. */
  b: number;
  /** Points of the patch, N. */
  n: number;
  /** Core points (the loss is computed on the first `nCore` points). */
  nCore: number;
  /** Standardised coordinates [N, 3] (a view of the dataset; never modified). */
  coords: Float32Array;
  /** [B, N, C * Tin] */
  inputs: Float32Array;
  /** [B, N, C * Tout] */
  targets: Float32Array;
  /** First time step of each window. */
  starts: Int32Array;
}

/** Assembles batches of a {@linkcode PatchDataset} into reusable buffers. */
export class BatchAssembler {
  #inputs: Float32Array;
  #targets: Float32Array;
  #starts: Int32Array;

  /** Buffers for batches of up to `maxBatch` windows of the largest patch. */
  constructor(readonly dataset: PatchDataset, readonly maxBatch: number) {
    const maxN = Math.max(...dataset.patches.map((p) => p.n));
    const { inputWindow, outputWindow } = dataset.options;
    const C = dataset.channels;
    this.#inputs = new Float32Array(maxBatch * maxN * C * inputWindow);
    this.#targets = new Float32Array(maxBatch * maxN * C * outputWindow);
    this.#starts = new Int32Array(maxBatch);
  }

  /** Fills the buffers for one sampled batch of the given part. */
  assemble(part: Part, sampled: SampledBatch): Batch {
    const ds = this.dataset;
    const p = ds.patches[sampled.patch];
    const B = sampled.windows.length;
    if (B > this.maxBatch) throw new Error(`batch of ${B} windows exceeds the assembler's ${this.maxBatch}`);
    const { inputWindow: Ti, outputWindow: To } = ds.options;
    const C = ds.channels, N = p.n, T = p.steps, v = p.values;
    const inputs = this.#inputs, targets = this.#targets;
    const ci = C * Ti, co = C * To;
    for (let b = 0; b < B; b++) {
      const t0 = ds.windowStart(sampled.patch, part, sampled.windows[b]);
      this.#starts[b] = t0;
      for (let n = 0; n < N; n++) {
        let di = (b * N + n) * ci;
        let dt = (b * N + n) * co;
        for (let c = 0; c < C; c++) {
          let s = (c * N + n) * T + t0;
          for (let i = 0; i < Ti; i++) inputs[di++] = v[s++];
          for (let i = 0; i < To; i++) targets[dt++] = v[s++];
        }
      }
    }
    return {
      patch: sampled.patch,
      b: B,
      n: N,
      nCore: p.nCore,
      coords: p.coords,
      inputs: inputs.subarray(0, B * N * ci),
      targets: targets.subarray(0, B * N * co),
      starts: this.#starts.subarray(0, B),
    };
  }
}
