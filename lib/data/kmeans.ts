/**
 * k-means clustering of 3D points (k-means++ seeding, Lloyd iterations), deterministic for a given seed.
 *
 * @module
 */

import { Rng } from "./rng.ts";

/** Result of {@linkcode kmeans}. */
export interface KMeansResult {
  /** Cluster of each point, 0..k-1. */
  labels: Int32Array;
  /** Cluster centres, flat [k, 3]. */
  centres: Float64Array;
  /** Lloyd iterations run. */
  iterations: number;
}

/**
 * Clusters the points `idx` of `points` (flat [n, 3]) into k clusters. Clusters are numbered by their smallest
 * member index, so the numbering does not depend on the seeding order. No cluster is left empty.
 */
export function kmeans(
  points: Float64Array,
  idx: Int32Array,
  k: number,
  seed: number,
  maxIter = 300,
): KMeansResult {
  const n = idx.length;
  if (k < 1 || k > n) throw new Error(`k-means: cannot make ${k} clusters of ${n} points`);
  const rng = new Rng(seed);
  const centres = new Float64Array(k * 3);
  const d2 = new Float64Array(n).fill(Infinity);
  // k-means++ seeding
  let pick = rng.int(n);
  for (let c = 0; c < k; c++) {
    const j = idx[pick] * 3;
    centres.set(points.subarray(j, j + 3), c * 3);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const p = idx[i] * 3;
      const dx = points[p] - centres[c * 3],
        dy = points[p + 1] - centres[c * 3 + 1],
        dz = points[p + 2] - centres[c * 3 + 2];
      const d = dx * dx + dy * dy + dz * dz;
      if (d < d2[i]) d2[i] = d;
      total += d2[i];
    }
    if (c + 1 < k) {
      let r = rng.next() * total;
      pick = n - 1;
      for (let i = 0; i < n; i++) {
        r -= d2[i];
        if (r < 0) {
          pick = i;
          break;
        }
      }
    }
  }
  const labels = new Int32Array(n).fill(-1);
  const sums = new Float64Array(k * 3);
  const counts = new Int32Array(k);
  let iterations = 0;
  for (; iterations < maxIter; iterations++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const p = idx[i] * 3;
      let best = 0, bestD = Infinity;
      for (let c = 0; c < k; c++) {
        const dx = points[p] - centres[c * 3],
          dy = points[p + 1] - centres[c * 3 + 1],
          dz = points[p + 2] - centres[c * 3 + 2];
        const d = dx * dx + dy * dy + dz * dz;
        if (d < bestD) {
          bestD = d;
          best = c;
        }
      }
      d2[i] = bestD;
      if (labels[i] !== best) {
        labels[i] = best;
        changed++;
      }
    }
    if (changed === 0) break;
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const p = idx[i] * 3, c = labels[i];
      sums[c * 3] += points[p];
      sums[c * 3 + 1] += points[p + 1];
      sums[c * 3 + 2] += points[p + 2];
      counts[c]++;
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        // re-seed an empty cluster at the point farthest from its centre
        let far = 0;
        for (let i = 1; i < n; i++) if (d2[i] > d2[far]) far = i;
        centres.set(points.subarray(idx[far] * 3, idx[far] * 3 + 3), c * 3);
        d2[far] = 0;
        labels[far] = c;
      } else {
        for (let a = 0; a < 3; a++) centres[c * 3 + a] = sums[c * 3 + a] / counts[c];
      }
    }
  }
  // renumber clusters by their first member
  const rename = new Int32Array(k).fill(-1);
  let next = 0;
  for (let i = 0; i < n; i++) if (rename[labels[i]] < 0) rename[labels[i]] = next++;
  for (let c = 0; c < k; c++) if (rename[c] < 0) rename[c] = next++;
  const outCentres = new Float64Array(k * 3);
  for (let c = 0; c < k; c++) outCentres.set(centres.subarray(c * 3, c * 3 + 3), rename[c] * 3);
  for (let i = 0; i < n; i++) labels[i] = rename[labels[i]];
  return { labels, centres: outCentres, iterations };
}
