/**
 * Normalisation statistics of a patch dataset (coordinates over the core points of all patches; each target column
 * over the core points and training steps of all patches; standard deviations with ddof = 1, as pandas) and the
 * standardisation of coordinates and values with them.
 *
 * @module
 */

import { DataError } from "./data_error.ts";
import type { Normalization, Patch } from "./dataset.ts";
import type { RawPatch } from "./patch_reader.ts";

/** Statistics from the training part of `raws` (float64 sums of the shifted values). */
export function computeNormalization(
  raws: RawPatch[],
  shift: Float64Array,
  targetCols: string[],
  trainStepsOf: (T: number) => number,
  dir: string,
): Normalization {
  const C = targetCols.length;
  const cs = [0, 0, 0], cs2 = [0, 0, 0];
  let cn = 0;
  const c0 = raws[0].coords.slice(0, 3);
  const vs = new Float64Array(C), vs2 = new Float64Array(C);
  let vn = 0;
  for (const r of raws) {
    for (let j = 0; j < r.nCore; j++) {
      for (let a = 0; a < 3; a++) {
        const d = r.coords[j * 3 + a] - c0[a];
        cs[a] += d;
        cs2[a] += d * d;
      }
    }
    cn += r.nCore;
    const tr = trainStepsOf(r.steps);
    for (let c = 0; c < C; c++) {
      let s = 0, s2 = 0;
      for (let j = 0; j < r.nCore; j++) {
        const base = (c * r.n + j) * r.steps;
        for (let t = 0; t < tr; t++) {
          const v = r.values[base + t];
          s += v;
          s2 += v * v;
        }
      }
      vs[c] += s;
      vs2[c] += s2;
    }
    vn += r.nCore * tr;
  }
  if (vn < 2) {
    throw new DataError(
      `${dir}: the training part holds fewer than 2 values per column; lower --val-ratio or add time steps`,
    );
  }
  const std = (s: number, s2: number, n: number) => Math.sqrt(Math.max(0, (s2 - (s * s) / n) / (n - 1)));
  return {
    coordMean: [0, 1, 2].map((a) => c0[a] + cs[a] / cn),
    coordStd: [0, 1, 2].map((a) => std(cs[a], cs2[a], cn)),
    columns: [...targetCols],
    mean: Array.from(vs, (s, c) => shift[c] + s / vn),
    std: Array.from(vs, (s, c) => std(s, vs2[c], vn)),
    source: "core points of all patches; values over the training steps",
  };
}

/** A constant field (std 0) is left unscaled rather than divided by zero. */
const safe = (s: number) => (s > 0 && Number.isFinite(s) ? s : 1);

/** The patches with standardised coordinates (new arrays) and values (standardised in place). */
export function standardize(
  raws: RawPatch[],
  norm: Normalization,
  shift: Float64Array,
  trainStepsOf: (T: number) => number,
): Patch[] {
  return raws.map((r) => {
    const coords = new Float32Array(r.n * 3);
    for (let j = 0; j < r.n; j++) {
      for (let a = 0; a < 3; a++) {
        coords[j * 3 + a] = (r.coords[j * 3 + a] - norm.coordMean[a]) / safe(norm.coordStd[a]);
      }
    }
    for (let c = 0; c < norm.columns.length; c++) {
      const off = shift[c] - norm.mean[c], inv = 1 / safe(norm.std[c]);
      const v = r.values;
      const lo = c * r.n * r.steps, hi = lo + r.n * r.steps;
      for (let i = lo; i < hi; i++) v[i] = (v[i] + off) * inv;
    }
    return {
      id: r.id,
      name: r.name,
      nCore: r.nCore,
      nGhost: r.nGhost,
      n: r.n,
      steps: r.steps,
      trainSteps: trainStepsOf(r.steps),
      coords,
      values: r.values,
      droppedPoints: r.droppedPoints,
    };
  });
}
