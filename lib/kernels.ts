/**
 * Faster kernels for the wasm and cpu backends, registered in place of (or in addition to) the stock ones.
 * Gradients in tfjs are defined on kernel names, so autodiff keeps working.
 *
 * - `UnsortedSegmentSum`: one pass over the rows (missing on wasm, where it also breaks the gradient of gather;
 *   the cpu one loops over all rows once per segment).
 * - `BatchMatMul`: the system BLAS `cblas_sgemm` (OpenBLAS, MKL, or the library named by `GINO_GW_BLAS`) through
 *   `Deno.dlopen`, when one is found and FFI is allowed; otherwise the stock kernel stays.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { openBlas } from "./blas.ts";
import type { Blas } from "./blas.ts";

/** What {@linkcode registerFastKernels} did. */
export interface KernelReport {
  /** Kernel names that were replaced or added. */
  registered: string[];
  /** The BLAS library in use for BatchMatMul, if any. */
  blas?: string;
}

// deno-lint-ignore no-explicit-any
type AnyBackend = any;
// deno-lint-ignore no-explicit-any
type TensorInfo = any;
type Typed = Float32Array | Int32Array;

interface Io {
  read(t: TensorInfo): Typed;
  out(shape: number[], dtype: string): { info: TensorInfo; values: Typed; finish(): TensorInfo };
}

function io(backendName: string, backend: AnyBackend): Io {
  if (backendName === "wasm") {
    return {
      read: (t) => backend.typedArrayFromHeap(t),
      out: (shape, dtype) => {
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

function replace(name: string, backendName: string, kernelFunc: tf.KernelFunc) {
  if (tf.getKernel(name, backendName)) tf.unregisterKernel(name, backendName);
  tf.registerKernel({ kernelName: name, backendName, kernelFunc });
}

const done = new Map<string, KernelReport>();

/** Registers the faster kernels on `backendName` (`wasm` or `cpu`); idempotent. */
export function registerFastKernels(
  backendName: string,
  log: (msg: string) => void = () => {},
): KernelReport {
  const seen = done.get(backendName);
  if (seen) return seen;
  const report: KernelReport = { registered: [] };

  replace("UnsortedSegmentSum", backendName, ({ inputs, backend, attrs }) => {
    const { x, segmentIds } = inputs as { x: TensorInfo; segmentIds: TensorInfo };
    const numSegments = (attrs as { numSegments: number }).numSegments;
    const rio = io(backendName, backend);
    const nIds = segmentIds.shape.reduce((a: number, b: number) => a * b, 1);
    const xSize = x.shape.reduce((a: number, b: number) => a * b, 1);
    const row = nIds === 0 ? 0 : xSize / nIds;
    const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
    const o = rio.out(outShape, x.dtype);
    const out = o.values;
    const xs = rio.read(x), ids = rio.read(segmentIds);
    out.fill(0);
    for (let e = 0; e < nIds; e++) {
      const s = ids[e];
      if (s < 0 || s >= numSegments) continue;
      const src = e * row, dst = s * row;
      for (let k = 0; k < row; k++) out[dst + k] += xs[src + k];
    }
    return o.finish();
  });
  report.registered.push("UnsortedSegmentSum");

  let blas: Blas | undefined;
  try {
    blas = openBlas();
  } catch (e) {
    log(`note: system BLAS not used (${(e as Error).message}); matmuls use the stock ${backendName} kernel`);
  }
  if (blas) {
    const b = blas;
    replace("BatchMatMul", backendName, ({ inputs, backend, attrs }) => {
      const { a, b: bm } = inputs as { a: TensorInfo; b: TensorInfo };
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      const rio = io(backendName, backend);
      const ra = a.shape.length, rb = bm.shape.length;
      const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
      const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const n = transposeB ? bm.shape[rb - 2] : bm.shape[rb - 1];
      const batchA = a.shape.slice(0, -2), batchB = bm.shape.slice(0, -2);
      const sizeA = batchA.reduce((x: number, y: number) => x * y, 1);
      const sizeB = batchB.reduce((x: number, y: number) => x * y, 1);
      if (sizeA !== sizeB && sizeA !== 1 && sizeB !== 1) {
        throw new Error(`BatchMatMul: batch shapes [${batchA}] and [${batchB}] do not broadcast`);
      }
      const outBatch = sizeA >= sizeB ? batchA : batchB;
      const batch = Math.max(sizeA, sizeB);
      const o = rio.out([...outBatch, m, n], "float32");
      const out = o.values as Float32Array;
      const av = rio.read(a) as Float32Array, bv = rio.read(bm) as Float32Array;
      if (sizeB === 1 && !transposeA && batch > 1) {
        // a batch of A against one shared B is one GEMM with batch*m rows
        b.sgemm(false, transposeB, batch * m, n, k, av, bv, out);
      } else {
        for (let i = 0; i < batch; i++) {
          const ai = sizeA === 1 ? 0 : i, bi = sizeB === 1 ? 0 : i;
          b.sgemm(
            transposeA,
            transposeB,
            m,
            n,
            k,
            av.subarray(ai * m * k, (ai + 1) * m * k),
            bv.subarray(bi * k * n, (bi + 1) * k * n),
            out.subarray(i * m * n, (i + 1) * m * n),
          );
        }
      }
      return o.finish();
    });
    report.registered.push("BatchMatMul");
    report.blas = b.library;
  }
  done.set(backendName, report);
  return report;
}
