/**
 * Differentiable building blocks of the GINO layers.
 *
 * @module
 */

import { tf } from "../tf.ts";

/** Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (PyTorch's default). */
export function gelu(x: tf.Tensor): tf.Tensor {
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
  return tf.tidy(() => {
    const gathered = tf.gather(feats, src); // [E, B, C]
    const prod = tf.mul(gathered, k.expandDims(1));
    return tf.unsortedSegmentSum(prod, dst, numSegments) as tf.Tensor3D;
  });
}
