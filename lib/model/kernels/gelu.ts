/**
 * `GinoGelu` and its gradient `GinoGeluGrad` (new kernels): exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in one pass
 * with an erf accurate to float32 (the stock Erf is slow on wasm, and the composed GELU makes several full-size
 * temporaries).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { customOp, io, sizeOf } from "./kernel.ts";
import { geluScalar, simdLoops } from "./simd.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** Name of the fused GELU kernel. */
export const GELU_KERNEL = "GinoGelu";
/** Name of its gradient kernel. */
export const GELU_GRAD_KERNEL = "GinoGeluGrad";

/**
 * GELU forward with its derivative: outputs [gelu(x), gelu'(x)]. The derivative is kept for the backward pass
 * (which is then one multiplication) in place of x. WebAssembly SIMD on the wasm backend.
 */
export const geluKernel: FastKernel = {
  name: GELU_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const rio = io(backendName, backend);
    const y = rio.out(x.shape, "float32"), d = rio.out(x.shape, "float32");
    const n = sizeOf(x.shape);
    const simd = rio.heap && simdLoops(rio.heap.memory);
    if (simd && rio.heap) {
      const at = rio.heap.offset;
      simd.gelu(at(x), at(y.info), at(d.info), n);
    } else {
      const ys = y.values, ds = d.values, xs = rio.read(x);
      for (let i = 0; i < n; i++) {
        const [yv, dv] = geluScalar(xs[i]);
        ys[i] = yv;
        ds[i] = dv;
      }
    }
    return [y.finish(), d.finish()];
  },
  example: () => {
    const xs = Float32Array.from({ length: 801 }, (_, i) => -8 + i / 50);
    return {
      inputs: { x: tf.tensor1d(xs) },
      expect: Array.from(xs, (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2))),
      tol: 3e-7,
      op: ({ x }) => geluOp(x),
      composed: ({ x }) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))),
      differentiate: ["x"],
    };
  },
};

/**
 * GELU through the kernel, differentiable: the derivative the kernel computes is kept for the backward pass (one
 * multiplication). A custom gradient rather than a registered one: tfjs would otherwise make a tensor of zeros the
 * size of x for the derivative output's (absent) gradient.
 */
export const geluOp: (x: tf.Tensor) => tf.Tensor = customOp(([x], save) => {
  const [y, d] = tf.engine().runKernel(GELU_KERNEL, { x }) as tf.Tensor[];
  save([d]);
  return { value: y, gradFunc: (dy, saved) => [tf.mul(dy, saved[0])] };
});

/** GELU's gradient from x (for callers that kept x rather than the derivative). */
export const geluGradKernel: FastKernel = {
  name: GELU_GRAD_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend }) => {
    const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
    const rio = io(backendName, backend);
    const o = rio.out(x.shape, "float32");
    const out = o.values, xs = rio.read(x), g = rio.read(dy);
    for (let i = 0; i < out.length; i++) out[i] = g[i] * geluScalar(xs[i])[1];
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
