/**
 * `UnsortedSegmentSum` in one pass over the rows (missing on wasm, where it also breaks the gradient of gather; the
 * stock cpu kernel loops over all rows once per segment).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io, sizeOf } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** out[s, ...] = sum of the rows x[e, ...] with segmentIds[e] = s (ids outside [0, numSegments) are skipped). */
export const segmentSumKernel: FastKernel = {
  name: "UnsortedSegmentSum",
  backends: ["wasm", "cpu"],
  forward: (backendName) => (args) => {
    const { inputs, backend, attrs } = args;
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const numSegments = (attrs as { numSegments: number }).numSegments;
    const rio = io(backendName, backend);
    const nIds = sizeOf(segmentIds.shape);
    const row = nIds === 0 ? 0 : sizeOf(x.shape) / nIds;
    const o = rio.out([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
    const out = o.values;
    const xs = rio.read(x), ids = rio.read(segmentIds);
    out.fill(0);
    for (let e = 0; e < nIds; e++) {
      const s = ids[e];
      if (s < 0 || s >= numSegments) continue;
      const src = e * row, dst = s * row;
      for (let k = 0; k < row; k++) out[dst + k] += xs[src + k];
    }
    return o.finish();
  },
  example: () => {
    const rng = new Rng(4);
    const E = 200, S = 17, C = 3;
    const x = Float32Array.from({ length: E * C }, () => rng.normal());
    const ids = Int32Array.from({ length: E }, () => rng.int(S + 2) - 1); // some outside the range
    const expect = new Float64Array(S * C);
    for (let e = 0; e < E; e++) {
      if (ids[e] >= 0 && ids[e] < S) { for (let c = 0; c < C; c++) expect[ids[e] * C + c] += x[e * C + c]; }
    }
    return {
      inputs: { x: tf.tensor2d(x, [E, C]), segmentIds: tf.tensor1d(ids, "int32") },
      attrs: { numSegments: S },
      expect,
      tol: 1e-6,
    };
  },
};
