/**
 * `GinoGatherRows` (new): rows of x [M, ...] at `indices` [E], with a gradient that is a direct scatter-add (the
 * stock gather gradient builds full-size masks).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io, sizeOf } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** Name of the row-gather kernel. */
export const GATHER_ROWS_KERNEL = "GinoGatherRows";

/** Row gather: x [M, ...], indices [E] int32 -> [E, ...]. */
export const gatherRowsKernel: FastKernel = {
  name: GATHER_ROWS_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { x, indices } = inputs as Record<string, TensorInfo>;
    const rio = io(backendName, backend);
    const row = sizeOf(x.shape.slice(1));
    const n = indices.shape[0];
    const o = rio.out([n, ...x.shape.slice(1)], "float32");
    const out = o.values as Float32Array;
    const xv = rio.read(x) as Float32Array, iv = rio.read(indices) as Int32Array;
    for (let e = 0; e < n; e++) {
      const src = iv[e] * row, dst = e * row;
      for (let c = 0; c < row; c++) out[dst + c] = xv[src + c];
    }
    return o.finish();
  },
  gradient: {
    kernelName: GATHER_ROWS_KERNEL,
    inputsToSave: ["x", "indices"],
    gradFunc: (dy, saved) => {
      const [x, indices] = saved;
      return {
        x: () =>
          tf.engine().runKernel("UnsortedSegmentSum", { x: dy as tf.Tensor, segmentIds: indices }, {
            numSegments: x.shape[0],
          }) as tf.Tensor,
        indices: () => tf.zerosLike(indices),
      };
    },
  },
  example: () => {
    const rng = new Rng(3);
    const M = 40, E = 300, C = 5;
    const x = Float32Array.from({ length: M * C }, () => rng.normal());
    const idx = Int32Array.from({ length: E }, () => rng.int(M));
    const expect = new Float32Array(E * C);
    for (let e = 0; e < E; e++) for (let c = 0; c < C; c++) expect[e * C + c] = x[idx[e] * C + c];
    return {
      inputs: { x: tf.tensor2d(x, [M, C]), indices: tf.tensor1d(idx, "int32") },
      expect,
      tol: 0,
      composed: ({ x, indices }) => tf.gather(x, indices),
      differentiate: ["x"],
    };
  },
};
