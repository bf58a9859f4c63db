/**
 * `GinoGelu` and its gradient `GinoGeluGrad` (new kernels): exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in one pass
 * with an erf accurate to float32 (the stock Erf is slow on wasm, and the composed GELU makes several full-size
 * temporaries).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { erf32, ERF_A } from "./erf.ts";
import { io } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** Name of the fused GELU kernel. */
export const GELU_KERNEL = "GinoGelu";
/** Name of its gradient kernel. */
export const GELU_GRAD_KERNEL = "GinoGeluGrad";

const [A1, A2, A3, A4, A5, A6] = ERF_A;

/** GELU forward. */
export const geluKernel: FastKernel = {
  name: GELU_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const rio = io(backendName, backend);
    const o = rio.out(x.shape, "float32");
    const out = o.values, xs = rio.read(x);
    for (let i = 0; i < out.length; i++) {
      const v = xs[i];
      out[i] = 0.5 * v * (1 + erf32(v * Math.SQRT1_2));
    }
    return o.finish();
  },
  gradient: {
    kernelName: GELU_KERNEL,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({
      x: () => tf.engine().runKernel(GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor,
    }),
  },
  example: () => {
    const xs = Float32Array.from({ length: 801 }, (_, i) => -8 + i / 50);
    return {
      inputs: { x: tf.tensor1d(xs) },
      expect: Array.from(xs, (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2))),
      tol: 3e-7,
      composed: ({ x }) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
      differentiate: ["x"],
    };
  },
};

/** GELU gradient: dy x d/dx [0.5 x (1 + E(x / sqrt2))] with E the same erf approximation. */
export const geluGradKernel: FastKernel = {
  name: GELU_GRAD_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
    const rio = io(backendName, backend);
    const o = rio.out(x.shape, "float32");
    const out = o.values, xs = rio.read(x), g = rio.read(dy);
    for (let i = 0; i < out.length; i++) {
      // = 0.5 (1 + E(z)) + 0.5 x E'(z) / sqrt2, z = x / sqrt2
      const v = xs[i];
      const z = v < 0 ? -v * Math.SQRT1_2 : v * Math.SQRT1_2;
      const p = 1 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))));
      const dp = A1 + z * (2 * A2 + z * (3 * A3 + z * (4 * A4 + z * (5 * A5 + z * 6 * A6))));
      let p16 = p * p;
      p16 *= p16;
      p16 *= p16;
      p16 *= p16;
      const inv = 1 / p16;
      const e = v < 0 ? inv - 1 : 1 - inv;
      const de = (16 * dp * inv) / p;
      out[i] = g[i] * (0.5 * (1 + e) + 0.5 * v * de * Math.SQRT1_2);
    }
    return o.finish();
  },
};

/** erf in float64 (series below 3, continued fraction above), for reference values. */
export function erf64(x: number): number {
  const z = Math.abs(x);
  let s: number;
  if (z < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    s = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let n = 60; n >= 1; n--) f = (n / 2) / (z + f);
    s = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
  }
  return x < 0 ? -s : s;
}
