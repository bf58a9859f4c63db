/**
 * `Sum` in one pass when the reduced axes lead or trail (the stock wasm kernel transposes first); any other sum goes
 * to the stock kernel.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io, sizeOf } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** Sum over leading or trailing axes in one pass. */
export const sumKernel: FastKernel = {
  name: "Sum",
  backends: ["wasm", "cpu"],
  forward: (backendName, { stock }) => {
    if (!stock) return undefined;
    return (args) => {
      const { inputs, backend, attrs } = args;
      const { x } = inputs as { x: TensorInfo };
      const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
      const rank = x.shape.length;
      const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))]
        .sort((a, b) => a - b);
      const leading = axes.every((a, i) => a === i);
      const trailing = axes.every((a, i) => a === rank - axes.length + i);
      if (x.dtype !== "float32" || axes.length === 0 || (!leading && !trailing)) return stock(args);
      const rio = io(backendName, backend);
      const keptShape = x.shape.filter((_: number, i: number) => !axes.includes(i));
      const outShape = keepDims
        ? x.shape.map((d: number, i: number) => (axes.includes(i) ? 1 : d))
        : keptShape;
      const inner = leading ? sizeOf(keptShape) : axes.reduce((a, i) => a * x.shape[i], 1);
      const size = sizeOf(x.shape);
      const o = rio.out(outShape, "float32");
      const out = o.values, xs = rio.read(x);
      if (leading) {
        const acc = new Float64Array(inner);
        for (let r = 0; r < size; r += inner) for (let k = 0; k < inner; k++) acc[k] += xs[r + k];
        for (let k = 0; k < inner; k++) out[k] = acc[k];
      } else {
        for (let r = 0, j = 0; r < size; r += inner, j++) {
          let a = 0;
          for (let k = 0; k < inner; k++) a += xs[r + k];
          out[j] = a;
        }
      }
      return o.finish();
    };
  },
  example: () => {
    const rng = new Rng(6);
    const v = Float32Array.from({ length: 6 * 5 * 4 }, () => rng.normal());
    const expect = new Float64Array(4);
    for (let i = 0; i < 30; i++) for (let c = 0; c < 4; c++) expect[c] += v[i * 4 + c];
    return {
      inputs: { x: tf.tensor3d(v, [6, 5, 4]) },
      attrs: { axis: [0, 1], keepDims: false },
      expect,
      tol: 1e-5,
    };
  },
};
