/**
 * Differentiable building blocks of the GINO layers.
 *
 * @module
 */

import { tf } from "./backend.ts";
import { EDGE_REDUCE_KERNEL } from "./kernels/edge_reduce.ts";
import { GATHER_ROWS_KERNEL } from "./kernels/gather_rows.ts";
import { GELU_KERNEL, geluOp } from "./kernels/gelu.ts";
import { FNO_LAYER_KERNEL, fnoLayerOp } from "./kernels/fno_layer.ts";

/**
 * Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default): the fused kernel where the backend has it, else
 * composed from stock ops.
 */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (tf.getKernel(GELU_KERNEL, tf.getBackend())) return geluOp(x);
  return geluComposed(x);
}

/** GELU from stock ops (the path of backends without the fused kernel). */
export function geluComposed(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/**
 * Edge reduction of a linear GNO kernel: out[s] = sum over edges e with dst[e] = s of k[e] * feats[src[e]].
 * k: [E, C], feats: [M, B, C], src/dst: [E] int32 -> [numSegments, B, C].
 */
export function edgeReduce(
  k: tf.Tensor2D,
  feats: tf.Tensor3D,
  src: tf.Tensor1D,
  dst: tf.Tensor1D,
  numSegments: number,
): tf.Tensor3D {
  if (tf.getKernel(EDGE_REDUCE_KERNEL, tf.getBackend())) {
    return tf.engine().runKernel(EDGE_REDUCE_KERNEL, { k, feats, src, dst }, { numSegments }) as tf.Tensor3D;
  }
  return edgeReduceComposed(k, feats, src, dst, numSegments);
}

/** {@linkcode edgeReduce} from stock ops (gather, multiply, segment sum). */
export function edgeReduceComposed(
  k: tf.Tensor2D,
  feats: tf.Tensor3D,
  src: tf.Tensor1D,
  dst: tf.Tensor1D,
  numSegments: number,
): tf.Tensor3D {
  return tf.tidy(() => {
    const gathered = tf.gather(feats, src); // [E, B, C]
    const prod = tf.mul(gathered, k.expandDims(1));
    return tf.unsortedSegmentSum(prod, dst, numSegments) as tf.Tensor3D;
  });
}

/** Rows `indices` of x [M, ...] -> [E, ...] (a gather along axis 0 with a scatter-add gradient). */
export function gatherRows<T extends tf.Tensor>(x: T, indices: tf.Tensor1D): T {
  if (tf.getKernel(GATHER_ROWS_KERNEL, tf.getBackend())) {
    return tf.engine().runKernel(GATHER_ROWS_KERNEL, { x, indices }) as T;
  }
  return tf.gather(x, indices) as T;
}

/** True when the fused FNO layer kernel is registered on the current backend (it needs a system BLAS). */
export function hasFnoLayerKernel(): boolean {
  return tf.getKernel(FNO_LAYER_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * One FNO layer before its activation, `spectralConv(h) + bias + h @ skip` (h [B, G1, G2, G3, C], weights
 * [M, C, O], skip [C, O], bias [O]), as the fused kernel (see kernels/fno_layer.ts).
 */
export function fnoLayer(
  h: tf.Tensor,
  wr: tf.Tensor,
  wi: tf.Tensor,
  skip: tf.Tensor,
  bias: tf.Tensor,
  nModes: number[],
): tf.Tensor {
  return fnoLayerOp(nModes)(h, wr, wi, skip, bias);
}
