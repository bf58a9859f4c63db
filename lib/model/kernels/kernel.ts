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
  /** The kernel as a differentiable op, when its gradient is not a registered one (custom gradient). */
  op?: (inputs: Record<string, tf.Tensor>) => tf.Tensor;
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
  /** It runs through the system BLAS (which is then looked for, and its absence reported, on these backends). */
  usesBlas?: boolean;
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
  /** The wasm backend's memory and a tensor's byte offset in it (undefined on other backends). */
  heap?: { memory: WebAssembly.Memory; offset(t: TensorInfo): number };
  /** A new output: fill `values`, then return `finish()`. */
  out(shape: number[], dtype: string): { info: TensorInfo; values: Typed; finish(): TensorInfo };
}

/** The {@linkcode Io} of a backend (`wasm` or `cpu`). */
export function io(backendName: string, backend: AnyBackend): Io {
  if (backendName === "wasm") {
    return {
      read: (t) => backend.typedArrayFromHeap(t),
      heap: {
        memory: backend.wasm.asm.memory,
        offset: (t) => backend.dataIdMap.get(t.dataId).memoryOffset,
      },
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

/** The forward half of a custom-gradient op: its value and the function giving each input's gradient. */
export type CustomForward = (
  inputs: tf.Tensor[],
  save: (tensors: tf.Tensor[]) => void,
) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[] };

/**
 * A differentiable op from a forward function (tfjs `customGrad`): only the tensors passed to `save` are kept for
 * the backward pass, and nothing is made for outputs that are not the op's value.
 */
export function customOp(f: CustomForward): (...inputs: tf.Tensor[]) => tf.Tensor {
  type Grad = Parameters<typeof tf.customGrad>[0];
  const forward = (...args: unknown[]) => {
    const save = args.pop() as (tensors: tf.Tensor[]) => void;
    return f(args as tf.Tensor[], save);
  };
  const g = tf.customGrad(forward as unknown as Grad);
  return (...inputs) => g(...inputs) as tf.Tensor;
}
