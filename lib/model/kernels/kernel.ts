/**
 * What a fast kernel is: a tfjs kernel (by name) implemented for some backends, registered in place of the stock
 * one or added under a new name, with its gradient (gradients are defined per kernel name, so autodiff keeps
 * working) and a small worked example that the tests compare every registered backend against.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import type { Blas } from "./blas.ts";

/** A tensor as the kernel functions see it (the backend's TensorInfo). */
// deno-lint-ignore no-explicit-any
export type TensorInfo = any;
// deno-lint-ignore no-explicit-any
type AnyBackend = any;
/** Element arrays a kernel reads and writes. */
export type Typed = Float32Array | Int32Array;

/** What a kernel's implementation may use besides its inputs. */
export interface KernelContext {
  /** The stock kernel of the same name on this backend, when there is one (a fast path may defer to it). */
  stock?: tf.KernelFunc;
  /** The system BLAS, when one was found. */
  blas?: Blas;
}

/** A small case of a kernel and its result computed another way, for the tests. */
export interface KernelExample {
  /** Inputs by name. */
  inputs: Record<string, tf.Tensor>;
  /** Attributes. */
  attrs?: Record<string, unknown>;
  /** The expected output, computed with plain loops (or another independent way). */
  expect: ArrayLike<number>;
  /** Allowed difference, relative to the largest expected magnitude (at least 1). */
  tol: number;
  /** The same function from stock ops, to compare gradients against. */
  composed?: (inputs: Record<string, tf.Tensor>) => tf.Tensor;
  /** Inputs to differentiate with respect to (float inputs). */
  differentiate?: string[];
}

/** One fast kernel: its name, the backends it has, its implementation, gradient and example. */
export interface FastKernel {
  /** tfjs kernel name: a stock one it replaces, or a new one (`Gino...`). */
  name: string;
  /** Backends it is implemented for. */
  backends: readonly string[];
  /** The kernel function on a backend, or undefined when its requirements are missing (e.g. no BLAS). */
  forward: (backendName: string, ctx: KernelContext) => tf.KernelFunc | undefined;
  /** Its gradient, for a new kernel (a replaced stock kernel keeps the stock gradient). */
  gradient?: tf.GradConfig;
  /** A worked example (see {@linkcode KernelExample}). */
  example?: () => KernelExample;
}

/** Reading inputs and making outputs on the wasm heap or in the cpu backend's arrays. */
export interface Io {
  /** The elements of an input. */
  read(t: TensorInfo): Typed;
  /** A new output: fill `values`, then return `finish()`. */
  out(shape: number[], dtype: string): { info: TensorInfo; values: Typed; finish(): TensorInfo };
}

/** The {@linkcode Io} of a backend (`wasm` or `cpu`). */
export function io(backendName: string, backend: AnyBackend): Io {
  if (backendName === "wasm") {
    return {
      read: (t) => backend.typedArrayFromHeap(t),
      out: (shape, dtype) => {
        // allocate first: it may grow the heap, which moves every view
        const info = backend.makeOutput(shape, dtype);
        return {
          info,
          get values() {
            return backend.typedArrayFromHeap(info);
          },
          finish: () => info,
        };
      },
    };
  }
  return {
    read: (t) => backend.data.get(t.dataId).values,
    out: (shape, dtype) => {
      const size = shape.reduce((a: number, b: number) => a * b, 1);
      const values = dtype === "int32" ? new Int32Array(size) : new Float32Array(size);
      return { info: undefined, values, finish: () => backend.makeTensorInfo(shape, dtype, values) };
    },
  };
}

/** Product of a shape's dimensions. */
export const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
