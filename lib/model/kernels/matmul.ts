/**
 * `BatchMatMul` through the system BLAS (`cblas_sgemm` of OpenBLAS, MKL, or the library named by `GINO_GW_BLAS`,
 * see `blas.ts`): a batch of A against one shared B is one GEMM with batch x m rows; one small A shared by a batch
 * of B lays the B's side by side for one GEMM. Registered only when a BLAS was found.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { io, sizeOf } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";
import type { Blas } from "./blas.ts";

const scratchBuffers: Float32Array[] = [new Float32Array(0), new Float32Array(0)];
function scratch(i: number, size: number): Float32Array {
  if (scratchBuffers[i].length < size) scratchBuffers[i] = new Float32Array(Math.ceil(size * 1.25));
  return scratchBuffers[i].subarray(0, size);
}

/** A shared small A against a batch of B: B's side by side ([k, batch * n]), one GEMM, then unpacked. */
function sharedA(
  blas: Blas,
  t: { transposeA: boolean; transposeB: boolean },
  d: { batch: number; m: number; n: number; k: number },
  av: Float32Array,
  bv: Float32Array,
  out: Float32Array,
): void {
  const { batch, m, n, k } = d;
  const bt = scratch(0, k * batch * n), ct = scratch(1, m * batch * n);
  const wide = batch * n;
  for (let i = 0; i < batch; i++) {
    const base = i * k * n;
    if (t.transposeB) {
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) bt[c * wide + i * n + r] = bv[base + r * k + c];
    } else {
      for (let c = 0; c < k; c++) bt.set(bv.subarray(base + c * n, base + (c + 1) * n), c * wide + i * n);
    }
  }
  blas.sgemm(t.transposeA, false, m, wide, k, av, bt, ct);
  for (let i = 0; i < batch; i++) {
    for (let r = 0; r < m; r++) {
      out.set(ct.subarray(r * wide + i * n, r * wide + (i + 1) * n), (i * m + r) * n);
    }
  }
}

/** Batched matmul with transposes and batch broadcasting, on BLAS. */
/**
 * Without a system BLAS: the wasm backend's own matmul is fast only without transpose flags (measured on
 * [32768 x 64]^T @ [32768 x 64]: 135 ms with transposeA, 32 ms after an explicit transpose; [32768 x 64] @
 * [64 x 64]^T: 99 ms against 11 ms), so the flagged operands are transposed first (the backward pass of every dense
 * layer uses the flags).
 */
function transposeFirst(backendName: string, stock: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const t = args.attrs as { transposeA: boolean; transposeB: boolean };
    if (!t.transposeA && !t.transposeB) return stock(args);
    const transpose = tf.getKernel("Transpose", backendName)?.kernelFunc;
    if (!transpose) return stock(args);
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const temps: TensorInfo[] = [];
    const flip = (x: TensorInfo) => {
      const r = x.shape.length;
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      const out = transpose({ inputs: { x }, backend: args.backend, attrs: { perm } }) as TensorInfo;
      temps.push(out);
      return out;
    };
    const inputs = { a: t.transposeA ? flip(a) : a, b: t.transposeB ? flip(b) : b };
    const out = stock({ ...args, inputs, attrs: { ...args.attrs, transposeA: false, transposeB: false } });
    // deno-lint-ignore no-explicit-any
    for (const x of temps) (args.backend as any).disposeData(x.dataId);
    return out;
  };
}

export const matmulKernel: FastKernel = {
  name: "BatchMatMul",
  backends: ["wasm", "cpu"],
  usesBlas: true,
  forward: (backendName, { blas, stock }) => {
    if (!blas) return backendName === "wasm" && stock ? transposeFirst(backendName, stock) : undefined;
    return ({ inputs, backend, attrs }) => {
      const { a, b: bm } = inputs as { a: TensorInfo; b: TensorInfo };
      const t = attrs as { transposeA: boolean; transposeB: boolean };
      const rio = io(backendName, backend);
      const ra = a.shape.length, rb = bm.shape.length;
      const m = t.transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
      const k = t.transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
      const n = t.transposeB ? bm.shape[rb - 2] : bm.shape[rb - 1];
      const batchA = a.shape.slice(0, -2), batchB = bm.shape.slice(0, -2);
      const sizeA = sizeOf(batchA), sizeB = sizeOf(batchB);
      if (sizeA !== sizeB && sizeA !== 1 && sizeB !== 1) {
        throw new Error(`BatchMatMul: batch shapes [${batchA}] and [${batchB}] do not broadcast`);
      }
      const batch = Math.max(sizeA, sizeB);
      const o = rio.out([...(sizeA >= sizeB ? batchA : batchB), m, n], "float32");
      const out = o.values as Float32Array;
      const av = rio.read(a) as Float32Array, bv = rio.read(bm) as Float32Array;
      if (sizeB === 1 && !t.transposeA && batch > 1) {
        blas.sgemm(false, t.transposeB, batch * m, n, k, av, bv, out);
      } else if (sizeA === 1 && batch > 1 && m * k <= 4096) sharedA(blas, t, { batch, m, n, k }, av, bv, out);
      else {
        for (let i = 0; i < batch; i++) {
          const ai = sizeA === 1 ? 0 : i, bi = sizeB === 1 ? 0 : i;
          blas.sgemm(
            t.transposeA,
            t.transposeB,
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
    };
  },
  example: () => {
    const rng = new Rng(6);
    const a = Float32Array.from({ length: 5 * 7 }, () => rng.normal());
    const b = Float32Array.from({ length: 9 * 7 * 4 }, () => rng.normal());
    const expect = new Float64Array(9 * 5 * 4);
    for (let i = 0; i < 9; i++) {
      for (let m = 0; m < 5; m++) {
        for (let n = 0; n < 4; n++) {
          for (let k = 0; k < 7; k++) expect[(i * 5 + m) * 4 + n] += a[m * 7 + k] * b[(i * 7 + k) * 4 + n];
        }
      }
    }
    return {
      inputs: { a: tf.tensor3d(a, [1, 5, 7]), b: tf.tensor3d(b, [9, 7, 4]) },
      attrs: { transposeA: false, transposeB: false },
      expect,
      tol: 1e-5,
    };
  },
};
