/**
 * `GinoEdgeReduce` (new): the linear GNO's gather-multiply-segment-sum in one pass with no [E, B, C] temporaries,
 * out[s, b, c] = sum over edges e with dst[e] = s of k[e, c] * feats[src[e], b, c]. Its gradient with respect to
 * the features is the same kernel with the edges reversed; with respect to k, `GinoEdgeReduceGradK`.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** Name of the fused edge-reduction kernel. */
export const EDGE_REDUCE_KERNEL = "GinoEdgeReduce";
/** Its gradient with respect to the kernel values. */
export const EDGE_REDUCE_GRAD_K_KERNEL = "GinoEdgeReduceGradK";

/** The edge reduction: k [E, C], feats [M, B, C], src/dst [E] int32 -> [numSegments, B, C]. */
export const edgeReduceKernel: FastKernel = {
  name: EDGE_REDUCE_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend, attrs }) => {
    const { k, feats, src, dst } = inputs as Record<string, TensorInfo>;
    const numSegments = (attrs as { numSegments: number }).numSegments;
    const rio = io(backendName, backend);
    const [, B, C] = feats.shape;
    const o = rio.out([numSegments, B, C], "float32");
    const out = o.values as Float32Array;
    const kv = rio.read(k) as Float32Array, fv = rio.read(feats) as Float32Array;
    const sv = rio.read(src) as Int32Array, dv = rio.read(dst) as Int32Array;
    out.fill(0);
    const E = sv.length, BC = B * C;
    for (let e = 0; e < E; e++) {
      const fo = sv[e] * BC, oo = dv[e] * BC, ko = e * C;
      for (let b = 0; b < B; b++) {
        const f = fo + b * C, q = oo + b * C;
        for (let c = 0; c < C; c++) out[q + c] += kv[ko + c] * fv[f + c];
      }
    }
    return o.finish();
  },
  gradient: {
    kernelName: EDGE_REDUCE_KERNEL,
    inputsToSave: ["k", "feats", "src", "dst"],
    gradFunc: (dy, saved) => {
      const [k, feats, src, dst] = saved;
      return {
        k: () =>
          tf.engine().runKernel(EDGE_REDUCE_GRAD_K_KERNEL, {
            dy: dy as tf.Tensor,
            feats,
            src,
            dst,
          }) as tf.Tensor,
        feats: () =>
          tf.engine().runKernel(EDGE_REDUCE_KERNEL, { k, feats: dy as tf.Tensor, src: dst, dst: src }, {
            numSegments: feats.shape[0],
          }) as tf.Tensor,
        src: () => tf.zerosLike(src),
        dst: () => tf.zerosLike(dst),
      };
    },
  },
  example: () => {
    const rng = new Rng(2);
    const E = 300, M = 40, S = 30, B = 3, C = 5;
    const k = Float32Array.from({ length: E * C }, () => rng.normal());
    const feats = Float32Array.from({ length: M * B * C }, () => rng.normal());
    const src = Int32Array.from({ length: E }, () => rng.int(M)),
      dst = Int32Array.from({ length: E }, () => rng.int(S));
    const expect = new Float64Array(S * B * C);
    for (let e = 0; e < E; e++) {
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          expect[(dst[e] * B + b) * C + c] += k[e * C + c] * feats[(src[e] * B + b) * C + c];
        }
      }
    }
    return {
      inputs: {
        k: tf.tensor2d(k, [E, C]),
        feats: tf.tensor3d(feats, [M, B, C]),
        src: tf.tensor1d(src, "int32"),
        dst: tf.tensor1d(dst, "int32"),
      },
      attrs: { numSegments: S },
      expect,
      tol: 1e-6,
      composed: ({ k, feats, src, dst }) =>
        tf.unsortedSegmentSum(tf.mul(tf.gather(feats, src), k.expandDims(1)), dst as tf.Tensor1D, S),
      differentiate: ["k", "feats"],
    };
  },
};

/** dk[e, c] = sum over b of dy[dst[e], b, c] * feats[src[e], b, c]. */
export const edgeReduceGradKKernel: FastKernel = {
  name: EDGE_REDUCE_GRAD_K_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { dy, feats, src, dst } = inputs as Record<string, TensorInfo>;
    const rio = io(backendName, backend);
    const [, B, C] = feats.shape;
    const E = src.shape[0];
    const o = rio.out([E, C], "float32");
    const out = o.values as Float32Array;
    const gv = rio.read(dy) as Float32Array, fv = rio.read(feats) as Float32Array;
    const sv = rio.read(src) as Int32Array, dv = rio.read(dst) as Int32Array;
    const BC = B * C;
    for (let e = 0; e < E; e++) {
      const fo = sv[e] * BC, go = dv[e] * BC, ko = e * C;
      for (let c = 0; c < C; c++) out[ko + c] = 0;
      for (let b = 0; b < B; b++) {
        const f = fo + b * C, g = go + b * C;
        for (let c = 0; c < C; c++) out[ko + c] += gv[g + c] * fv[f + c];
      }
    }
    return o.finish();
  },
};
