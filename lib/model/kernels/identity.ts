/**
 * `Identity` on wasm sharing the input's buffer instead of copying it (the stock kernel copies, so activations saved
 * for backprop are stored twice).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { FastKernel, TensorInfo } from "./kernel.ts";

/** A non-copying identity. */
export const identityKernel: FastKernel = {
  name: "Identity",
  backends: ["wasm"],
  forward: () => ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    (backend as { incRef(id: unknown): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  },
  example: () => {
    const v = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2);
    return { inputs: { x: tf.tensor2d(v, [3, 4]) }, expect: v, tol: 0 };
  },
};
