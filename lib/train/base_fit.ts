/**
 * The fitted base forecast of a residual model (`--residual-base fitted`): for each target column, the linear map
 * from a point's input window (T_in steps, plus a constant) to its output window (T_out steps) that fits the
 * training windows best in least squares, over the core points of every patch. It is computed once when a run
 * starts (closed form, deterministic), saved in the checkpoint's state, and shared by every point: a per-point
 * temporal extrapolation learned from the data, which the network then corrects with what it sees around each
 * point.
 *
 * @module
 */

import type { Patch } from "../data/dataset.ts";

/**
 * Fits the base on the training part of `patches` (windows every `stride` steps). Returns weights
 * `[C][T_in + 1][T_out]` flat (the last input row is the constant term), float64 values.
 */
export function fitTemporalBase(
  patches: Patch[],
  cols: number,
  tin: number,
  tout: number,
  stride = 1,
): number[] {
  const k = tin + 1;
  const out: number[] = [];
  for (let c = 0; c < cols; c++) {
    const ata = new Float64Array(k * k), aty = new Float64Array(k * tout);
    const a = new Float64Array(k);
    for (const p of patches) {
      const T = p.steps;
      for (let t = 0; t + tin + tout <= p.trainSteps; t += stride) {
        for (let n = 0; n < p.nCore; n++) {
          const row = (c * p.n + n) * T + t;
          for (let i = 0; i < tin; i++) a[i] = p.values[row + i];
          a[tin] = 1;
          for (let i = 0; i < k; i++) {
            const ai = a[i];
            for (let j = i; j < k; j++) ata[i * k + j] += ai * a[j];
            for (let h = 0; h < tout; h++) aty[i * tout + h] += ai * p.values[row + tin + h];
          }
        }
      }
    }
    for (let i = 0; i < k; i++) for (let j = 0; j < i; j++) ata[i * k + j] = ata[j * k + i];
    out.push(...solveSpd(ata, aty, k, tout));
  }
  return out;
}

/**
 * Solves (A + ridge) X = B for symmetric positive semi-definite A [k, k] and B [k, m] by Cholesky, with a ridge of
 * 1e-6 x the mean diagonal (so constant or collinear inputs still give an answer).
 */
function solveSpd(A: Float64Array, B: Float64Array, k: number, m: number): number[] {
  let trace = 0;
  for (let i = 0; i < k; i++) trace += A[i * k + i];
  const ridge = Math.max(1e-12, (1e-6 * trace) / k);
  const L = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * k + j] + (i === j ? ridge : 0);
      for (let q = 0; q < j; q++) s -= L[i * k + q] * L[j * k + q];
      L[i * k + j] = i === j ? Math.sqrt(Math.max(s, 1e-300)) : s / L[j * k + j];
    }
  }
  const X = new Float64Array(k * m);
  for (let col = 0; col < m; col++) {
    const y = new Float64Array(k);
    for (let i = 0; i < k; i++) {
      let s = B[i * m + col];
      for (let q = 0; q < i; q++) s -= L[i * k + q] * y[q];
      y[i] = s / L[i * k + i];
    }
    for (let i = k - 1; i >= 0; i--) {
      let s = y[i];
      for (let q = i + 1; q < k; q++) s -= L[q * k + i] * X[q * m + col];
      X[i * m + col] = s / L[i * k + i];
    }
  }
  return Array.from(X);
}
