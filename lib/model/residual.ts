/**
 * A model's prediction for one input window, optionally as a residual on the last input step (`--residual`, an
 * option beyond the reference GINO).
 *
 * @module
 */

import { tf } from "./backend.ts";
import type { Gino, GinoGeometry } from "./gino.ts";

/** Residual prediction: the model predicts the change from the last input step of each target column. */
export interface ResidualSpec {
  /** Target columns C. */
  cols: number;
  /** Input steps per column. */
  tin: number;
  /** Output steps per column. */
  tout: number;
}

/**
 * The model's prediction for x [B, N, C * Tin]: the GINO output, plus (with `residual`) the last input step of each
 * column repeated over the output window.
 */
export function predictWindow(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  residual?: ResidualSpec,
): tf.Tensor3D {
  const out = model.forwardGeometry(geom, x);
  if (!residual) return out;
  return tf.tidy(() => {
    const [b, n] = x.shape;
    const { cols, tin, tout } = residual;
    const last = x.reshape([b, n, cols, tin]).slice([0, 0, 0, tin - 1], [-1, -1, -1, 1]);
    return tf.add(out, tf.tile(last, [1, 1, 1, tout]).reshape([b, n, cols * tout])) as tf.Tensor3D;
  });
}
