/**
 * A model's prediction for one input window, optionally as a residual on a simple forecast from the input steps
 * (`--residual`, an option beyond the reference GINO): the last input step repeated (`--residual-base last`), the
 * line through the last two input steps (`--residual-base linear`), or a linear map of the whole input window
 * fitted to the training data (`--residual-base fitted`, see `lib/train/base_fit.ts`). The network then learns the
 * correction to that forecast, which it starts from at zero output.
 *
 * @module
 */

import { tf } from "./backend.ts";
import type { Gino, GinoGeometry } from "./gino.ts";

/** The forecast a residual model corrects: the last input step, linear extrapolation, or a fitted linear map. */
export type ResidualBase = "last" | "linear" | "fitted";

/** Residual prediction: the model predicts the difference from a simple forecast of each target column. */
export interface ResidualSpec {
  /** Target columns C. */
  cols: number;
  /** Input steps per column. */
  tin: number;
  /** Output steps per column. */
  tout: number;
  /** The forecast corrected (default `last`; `linear` needs two input steps, else it is `last`). */
  base?: ResidualBase;
  /** For `fitted`: weights `[C][Tin + 1][Tout]` flat, the last input row being the constant term. */
  fit?: ArrayLike<number>;
}

/**
 * The residual of a model's settings (`residual`, `residualBase`; checkpoints written before `residualBase`
 * existed mean `last`), or undefined for the plain output.
 */
export function residualOf(
  model: { residual: boolean; residualBase?: ResidualBase },
  cols: number,
  tin: number,
  tout: number,
  fit?: ArrayLike<number>,
): ResidualSpec | undefined {
  if (!model.residual) return undefined;
  const base = model.residualBase ?? "last";
  if (base === "fitted" && fit?.length !== cols * (tin + 1) * tout) {
    throw new Error(
      `the fitted residual base needs ${cols * (tin + 1) * tout} weights, got ${fit?.length ?? "none"}`,
    );
  }
  // float32 once here, not on every forward pass
  return { cols, tin, tout, base, fit: base === "fitted" ? Float32Array.from(fit!) : undefined };
}

/**
 * The base forecast of a residual model for x [B, N, C * Tin]: [B, N, C * Tout], step h (1-based) of column c
 * being `last + h * (last - previous)` for `linear`, `last` for `last`, and the fitted map of the window plus its
 * constant for `fitted`.
 */
export function residualBase(x: tf.Tensor3D, spec: ResidualSpec): tf.Tensor3D {
  return tf.tidy(() => {
    const [b, n] = x.shape;
    const { cols, tin, tout } = spec;
    const steps = x.reshape([b, n, cols, tin]);
    const last = steps.slice([0, 0, 0, tin - 1], [-1, -1, -1, 1]);
    if (spec.base === "fitted" && spec.fit) {
      // [C, B N, Tin + 1] x [C, Tin + 1, Tout] -> [C, B N, Tout]
      const a = tf.concat([steps, tf.onesLike(last)], 3).transpose([2, 0, 1, 3]).reshape([
        cols,
        b * n,
        tin + 1,
      ]);
      const fit = spec.fit instanceof Float32Array ? spec.fit : Float32Array.from(spec.fit);
      const w = tf.tensor3d(fit, [cols, tin + 1, tout]);
      return tf.matMul(a, w).reshape([cols, b, n, tout]).transpose([1, 2, 0, 3]).reshape([
        b,
        n,
        cols * tout,
      ]) as tf.Tensor3D;
    }
    let base: tf.Tensor = tf.tile(last, [1, 1, 1, tout]);
    if (spec.base === "linear" && tin >= 2) {
      const slope = tf.sub(last, steps.slice([0, 0, 0, tin - 2], [-1, -1, -1, 1]));
      const h = tf.tensor4d(Array.from({ length: tout }, (_, i) => i + 1), [1, 1, 1, tout]);
      base = tf.add(base, tf.mul(slope, h));
    }
    return base.reshape([b, n, cols * tout]) as tf.Tensor3D;
  });
}

/**
 * The model's prediction for x [B, N, C * Tin]: the GINO output, plus (with `residual`) the base forecast of
 * {@linkcode residualBase}.
 */
export function predictWindow(
  model: Gino,
  geom: GinoGeometry,
  x: tf.Tensor3D,
  residual?: ResidualSpec,
): tf.Tensor3D {
  const out = model.forwardGeometry(geom, x);
  if (!residual) return out;
  return tf.tidy(() => tf.add(out, residualBase(x, residual)) as tf.Tensor3D);
}

/**
 * Sets the last projection layer of `model` (weight and bias) to zero, so that a new residual model starts as its
 * base forecast exactly and training learns only the correction (the network's random output would otherwise add
 * noise to a forecast that is already good).
 */
export function startAtBase(model: Gino): void {
  const last = Math.max(
    ...model.params.map((p) => /^projection\.fcs\.(\d+)\./.exec(p.name)).filter((m) => m !== null).map((m) =>
      Number(m![1])
    ),
  );
  for (const p of model.params) {
    if (!p.name.startsWith(`projection.fcs.${last}.`)) continue;
    for (const v of p.vars) tf.tidy(() => v.assign(tf.zerosLike(v)));
  }
}
