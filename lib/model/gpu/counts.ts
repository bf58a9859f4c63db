/**
 * The GPU work of tfjs's own webgpu path (each op its own program), counted the way the engine counts its own
 * ({@linkcode GpuCounters}): dispatches, command-buffer submissions, uploads of tensor data and read-backs. The
 * benchmark uses it to compare the two paths on any adapter.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { GpuCounters } from "./runtime.ts";

/** Starts counting the current webgpu backend's work into `c`; returns the function that stops it. */
export function countTfjsWebGpu(c: GpuCounters): () => void {
  // deno-lint-ignore no-explicit-any
  const be = tf.backend() as any;
  const saved = {
    recordAndSubmit: be.recordAndSubmit,
    submitQueue: be.submitQueue,
    getBufferData: be.getBufferData,
    uploadToGPU: be.uploadToGPU,
  };
  be.recordAndSubmit = function (...a: unknown[]) {
    c.dispatches++;
    return saved.recordAndSubmit.apply(this, a);
  };
  be.submitQueue = function () {
    c.submits++;
    return saved.submitQueue.apply(this);
  };
  be.getBufferData = function (...a: unknown[]) {
    c.readbacks++;
    return saved.getBufferData.apply(this, a);
  };
  be.uploadToGPU = function (id: unknown) {
    const d = this.tensorMap.get(id);
    if (d && d.resource == null && d.values) c.uploads++;
    return saved.uploadToGPU.apply(this, [id]);
  };
  return () => Object.assign(be, saved);
}
