/**
 * Adam with PyTorch's update rule and defaults (betas 0.9 / 0.999, eps 1e-8), whose whole state (step count and
 * moments) can be saved in a checkpoint and restored exactly.
 *
 * `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import { ADAM_KERNEL, adamInPlace } from "../model/kernels/adam.ts";

/** Saved scalar state of {@linkcode Adam}. */
export interface AdamState {
  /** Time step number (0 = the initial state). */
  step: number;
  /** Learning rate. */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Denominator epsilon. */
  eps: number;
}

/** Adam over a fixed list of variables. */
export class Adam {
  /** Time step number (0 = the initial state). */
  step = 0;
  /** First moments, per variable. */
  readonly m: tf.Variable[];
  /** Second moments, per variable. */
  readonly v: tf.Variable[];

  /** An optimiser over `vars` with PyTorch's defaults. */
  constructor(
    readonly vars: tf.Variable[],
    public lr = 1e-3,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    // (tidy frees the zeros, so each moment owns its memory: see adamInPlace)
    this.m = tf.tidy(() => vars.map((w) => tf.variable(tf.zerosLike(w), false)));
    this.v = tf.tidy(() => vars.map((w) => tf.variable(tf.zerosLike(w), false)));
  }

  /** Applies one update with gradients given in the order of the variables. */
  apply(grads: tf.Tensor[]): void {
    this.step++;
    const t = this.step;
    const bc1 = 1 - Math.pow(this.beta1, t), bc2 = 1 - Math.pow(this.beta2, t);
    const stepSize = this.lr / bc1, sqrtBc2 = Math.sqrt(bc2);
    const fused = tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined;
    const attrs = { beta1: this.beta1, beta2: this.beta2, eps: this.eps, stepSize, sqrtBc2 };
    tf.tidy(() => {
      this.vars.forEach((w, i) => {
        const g = grads[i];
        // over the variables' own memory where nothing else holds it (the same arithmetic again)
        if (fused && adamInPlace(w, g, this.m[i], this.v[i], attrs)) return;
        if (fused) {
          // one pass over w, g, m, v (kernels/adam.ts); the same arithmetic as below
          const [w2, m2, v2] = tf.engine().runKernel(
            ADAM_KERNEL,
            { w, g, m: this.m[i], v: this.v[i] },
            attrs as unknown as tf.NamedAttrMap,
          ) as tf.Tensor[];
          this.m[i].assign(m2);
          this.v[i].assign(v2);
          w.assign(w2);
          return;
        }
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.div(tf.sqrt(v), sqrtBc2), this.eps);
        w.assign(tf.sub(w, tf.mul(tf.div(m, denom), stepSize)));
      });
    });
  }

  /** Scalar state (the moments are saved as tensors). */
  getState(): AdamState {
    return { step: this.step, lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps };
  }

  /** Restores scalar state and moments (Float32Arrays in variable order). */
  setState(state: AdamState, m: Float32Array[], v: Float32Array[]): void {
    if (m.length !== this.vars.length || v.length !== this.vars.length) {
      throw new Error(`optimiser state holds ${m.length} moments for ${this.vars.length} variables`);
    }
    this.step = state.step;
    this.lr = state.lr;
    this.vars.forEach((w, i) => {
      this.m[i].assign(tf.tensor(m[i], w.shape));
      this.v[i].assign(tf.tensor(v[i], w.shape));
    });
  }

  /** Frees the moments. */
  dispose(): void {
    tf.dispose([...this.m, ...this.v]);
  }
}
