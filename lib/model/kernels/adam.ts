/**
 * The Adam update of one variable in one pass (PyTorch's rule, see lib/train/adam.ts): inputs w, g, m, v; outputs
 * the new w, m, v. WebAssembly SIMD on the wasm backend, a JavaScript loop on `cpu`; the stock-op chain it replaces
 * reads and writes the 10.5 M parameters a dozen times.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io, sizeOf } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";
import { adamScalar, simdLoops } from "./simd.ts";
import { work } from "../parts.ts";

/** Name of the kernel. */
export const ADAM_KERNEL = "GinoAdam";

/** Its attributes: the decays, epsilon, lr / (1 - beta1^t) and sqrt(1 - beta2^t). */
export interface AdamAttrs {
  beta1: number;
  beta2: number;
  eps: number;
  stepSize: number;
  sqrtBc2: number;
}

/**
 * The same update written over w, m and v where they lie (wasm backend with SIMD only): no new buffers, so a step
 * reads four arrays and writes three instead of also allocating and filling three fresh ones. Applies only where
 * no other tensor shares w's, m's or v's memory (the backend's count of references is 1); returns false, having
 * changed nothing, where it does not apply (the caller then runs the kernel).
 */
export function adamInPlace(w: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, k: AdamAttrs): boolean {
  if (tf.getBackend() !== "wasm") return false;
  // deno-lint-ignore no-explicit-any
  const backend = tf.backend() as any;
  const rio = io("wasm", backend);
  const simd = rio.heap && simdLoops(rio.heap.memory);
  if (!simd || !rio.heap) return false;
  const own = [w, m, v];
  if (new Set(own.map((t) => t.dataId)).size !== 3 || own.some((t) => t.dataId === g.dataId)) return false;
  if ([...own, g].some((t) => t.dtype !== "float32" || t.size !== w.size)) return false;
  if (own.some((t) => backend.refCount(t.dataId) !== 1)) return false;
  const at = (t: tf.Tensor) => rio.heap!.offset(t as unknown as TensorInfo);
  work(
    `${ADAM_KERNEL} (in place)`,
    () => simd.adam({ w: at(w), g: at(g), m: at(m), v: at(v), w2: at(w), m2: at(m), v2: at(v) }, w.size, k),
  );
  return true;
}

/** The fused Adam update. */
export const adamKernel: FastKernel = {
  name: ADAM_KERNEL,
  backends: ["wasm", "cpu"],
  forward: (backendName) => ({ inputs, backend, attrs }) => {
    const { w, g, m, v } = inputs as Record<string, TensorInfo>;
    const k = attrs as unknown as AdamAttrs;
    const rio = io(backendName, backend);
    const outs = [rio.out(w.shape, "float32"), rio.out(w.shape, "float32"), rio.out(w.shape, "float32")];
    const n = sizeOf(w.shape);
    const simd = rio.heap && simdLoops(rio.heap.memory);
    if (simd && rio.heap) {
      const at = rio.heap.offset;
      simd.adam(
        {
          w: at(w),
          g: at(g),
          m: at(m),
          v: at(v),
          w2: at(outs[0].info),
          m2: at(outs[1].info),
          v2: at(outs[2].info),
        },
        n,
        k,
      );
    } else {
      const [wv, gv, mv, vv] = [w, g, m, v].map((t) => rio.read(t));
      const [w2, m2, v2] = outs.map((o) => o.values);
      for (let i = 0; i < n; i++) {
        const r = adamScalar(wv[i], gv[i], mv[i], vv[i], k);
        w2[i] = r[0];
        m2[i] = r[1];
        v2[i] = r[2];
      }
    }
    return outs.map((o) => o.finish());
  },
  example: () => {
    const rng = new Rng(3);
    const n = 103;
    const arr = (s: number, pos = false) =>
      Float32Array.from({ length: n }, () => (pos ? Math.abs(rng.normal()) : rng.normal()) * s);
    const w = arr(0.1), g = arr(0.01), m = arr(0.001), v = arr(1e-5, true);
    const attrs: AdamAttrs = {
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      stepSize: 1e-3 / (1 - 0.9 ** 3),
      sqrtBc2: Math.sqrt(1 - 0.999 ** 3),
    };
    return {
      inputs: { w: tf.tensor1d(w), g: tf.tensor1d(g), m: tf.tensor1d(m), v: tf.tensor1d(v) },
      attrs: attrs as unknown as Record<string, unknown>,
      expect: Array.from(w, (_, i) => adamScalar(w[i], g[i], m[i], v[i], attrs)[0]),
      tol: 1e-6,
    };
  },
};
