/**
 * Faster kernels for the wasm and cpu backends, registered in place of (or in addition to) the stock ones.
 * Gradients in tfjs are defined on kernel names, so autodiff keeps working.
 *
 * - `UnsortedSegmentSum`: one pass over the rows (missing on wasm, where it also breaks the gradient of gather;
 *   the cpu one loops over all rows once per segment).
 * - `BatchMatMul`: the system BLAS `cblas_sgemm` (OpenBLAS, MKL, or the library named by `GINO_GW_BLAS`) through
 *   `Deno.dlopen`, when one is found and FFI is allowed; otherwise the stock kernel stays. A matrix shared by a
 *   whole batch becomes one large GEMM.
 * - `GinoGelu` / `GinoGeluGrad` (new): exact GELU with an erf accurate to float32, in one pass (the stock Erf is
 *   slow on wasm and the composed GELU makes several full-size temporaries).
 * - `GinoEdgeReduce` / `GinoEdgeReduceGradK` (new): the linear GNO's gather-multiply-segment-sum in one pass with
 *   no [E, B, C] temporaries; its gradient with respect to the features is the same kernel with the edges reversed.
 * - `GinoGatherRows` (new): row gather whose gradient is a direct scatter-add (the stock gather gradient builds
 *   full-size masks).
 * - `Sum`: one pass when the reduced axes lead or trail (the stock wasm kernel transposes first).
 * - `Identity`: shares the input's buffer instead of copying it (wasm).
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

const scratchBuffers: Float32Array[] = [new Float32Array(0), new Float32Array(0)];
function scratch(i: number, size: number): Float32Array {
  if (scratchBuffers[i].length < size) scratchBuffers[i] = new Float32Array(Math.ceil(size * 1.25));
  return scratchBuffers[i].subarray(0, size);
}

let geluGradRegistered = false;
let edgeGradsRegistered = false;

function replace(name: string, backendName: string, kernelFunc: tf.KernelFunc) {
  if (tf.getKernel(name, backendName)) tf.unregisterKernel(name, backendName);
  tf.registerKernel({ kernelName: name, backendName, kernelFunc });
}

const done = new Map<string, KernelReport>();

/** Name of the fused edge-reduction kernel (registered on wasm and cpu). */
export const EDGE_REDUCE_KERNEL = "GinoEdgeReduce";
/** Its gradient with respect to the kernel values. */
export const EDGE_REDUCE_GRAD_K_KERNEL = "GinoEdgeReduceGradK";
/** Name of the row-gather kernel (registered on wasm and cpu). */
export const GATHER_ROWS_KERNEL = "GinoGatherRows";

/** Name of the fused GELU kernel (registered on wasm and cpu). */
export const GELU_KERNEL = "GinoGelu";
/** Name of its gradient kernel. */
export const GELU_GRAD_KERNEL = "GinoGeluGrad";

// erf(z) ~ 1 - P(z)^-16 with P(z) = 1 + a1 z + ... + a6 z^6 (Abramowitz & Stegun 7.1.28, |error| <= 3e-7): no exp,
// so it is several times faster than exp-based forms in JavaScript; the gradient kernel differentiates the same
// formula, so forward and backward agree exactly.
const A1 = 0.0705230784,
  A2 = 0.0422820123,
  A3 = 0.0092705272,
  A4 = 0.0001520143,
  A5 = 0.0002765672,
  A6 = 0.0000430638;

/** erf(x) to 3e-7 (Abramowitz & Stegun 7.1.28). */
export function erf32(x: number): number {
  const z = x < 0 ? -x : x;
  let p = 1 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))));
  p *= p;
  p *= p;
  p *= p;
  p *= p;
  const r = 1 - 1 / p;
  return x < 0 ? -r : r;
}

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

  replace(GELU_KERNEL, backendName, ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    const rio = io(backendName, backend);
    const o = rio.out(x.shape, "float32");
    const out = o.values, xs = rio.read(x);
    for (let i = 0; i < out.length; i++) {
      const v = xs[i];
      out[i] = 0.5 * v * (1 + erf32(v * Math.SQRT1_2));
    }
    return o.finish();
  });
  replace(GELU_GRAD_KERNEL, backendName, ({ inputs, backend }) => {
    const { dy, x } = inputs as { dy: TensorInfo; x: TensorInfo };
    const rio = io(backendName, backend);
    const o = rio.out(x.shape, "float32");
    const out = o.values, xs = rio.read(x), g = rio.read(dy);
    for (let i = 0; i < out.length; i++) {
      // d/dx [0.5 x (1 + E(x / sqrt2))] = 0.5 (1 + E(z)) + 0.5 x E'(z) / sqrt2, z = x / sqrt2, E = erf32
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
  });
  replace(EDGE_REDUCE_KERNEL, backendName, ({ inputs, backend, attrs }) => {
    // out[s, b, c] = sum_{e: dst[e] = s} k[e, c] * feats[src[e], b, c]
    const { k, feats, src, dst } = inputs as Record<string, TensorInfo>;
    const numSegments = (attrs as { numSegments: number }).numSegments;
    const rio = io(backendName, backend);
    const [, B, C] = feats.shape;
    const o = rio.out([numSegments, B, C], "float32");
    const out = o.values as Float32Array;
    const kv = rio.read(k) as Float32Array, fv = rio.read(feats) as Float32Array;
    const sv = rio.read(src) as Int32Array, dv = rio.read(dst) as Int32Array;
    out.fill(0);
    const E = sv.length, BC = B * C;
    for (let e = 0; e < E; e++) {
      const fo = sv[e] * BC, oo = dv[e] * BC, ko = e * C;
      for (let b = 0; b < B; b++) {
        const f = fo + b * C, q = oo + b * C;
        for (let c = 0; c < C; c++) out[q + c] += kv[ko + c] * fv[f + c];
      }
    }
    return o.finish();
  });
  replace(EDGE_REDUCE_GRAD_K_KERNEL, backendName, ({ inputs, backend }) => {
    // dk[e, c] = sum_b dy[dst[e], b, c] * feats[src[e], b, c]
    const { dy, feats, src, dst } = inputs as Record<string, TensorInfo>;
    const rio = io(backendName, backend);
    const [, B, C] = feats.shape;
    const E = src.shape[0];
    const o = rio.out([E, C], "float32");
    const out = o.values as Float32Array;
    const gv = rio.read(dy) as Float32Array, fv = rio.read(feats) as Float32Array;
    const sv = rio.read(src) as Int32Array, dv = rio.read(dst) as Int32Array;
    const BC = B * C;
    for (let e = 0; e < E; e++) {
      const fo = sv[e] * BC, go = dv[e] * BC, ko = e * C;
      for (let c = 0; c < C; c++) out[ko + c] = 0;
      for (let b = 0; b < B; b++) {
        const f = fo + b * C, g = go + b * C;
        for (let c = 0; c < C; c++) out[ko + c] += gv[g + c] * fv[f + c];
      }
    }
    return o.finish();
  });
  replace(GATHER_ROWS_KERNEL, backendName, ({ inputs, backend }) => {
    const { x, indices } = inputs as Record<string, TensorInfo>;
    const rio = io(backendName, backend);
    const row = x.shape.slice(1).reduce((a: number, b: number) => a * b, 1);
    const n = indices.shape[0];
    const o = rio.out([n, ...x.shape.slice(1)], "float32");
    const out = o.values as Float32Array;
    const xv = rio.read(x) as Float32Array, iv = rio.read(indices) as Int32Array;
    for (let e = 0; e < n; e++) {
      const src = iv[e] * row, dst = e * row;
      for (let c = 0; c < row; c++) out[dst + c] = xv[src + c];
    }
    return o.finish();
  });
  if (!edgeGradsRegistered) {
    tf.registerGradient({
      kernelName: EDGE_REDUCE_KERNEL,
      inputsToSave: ["k", "feats", "src", "dst"],
      gradFunc: (dy, saved) => {
        const [k, feats, src, dst] = saved;
        return {
          k: () =>
            tf.engine().runKernel(EDGE_REDUCE_GRAD_K_KERNEL, {
              dy: dy as tf.Tensor,
              feats,
              src,
              dst,
            }) as tf.Tensor,
          feats: () =>
            tf.engine().runKernel(EDGE_REDUCE_KERNEL, { k, feats: dy as tf.Tensor, src: dst, dst: src }, {
              numSegments: feats.shape[0],
            }) as tf.Tensor,
          src: () => tf.zerosLike(src),
          dst: () => tf.zerosLike(dst),
        };
      },
    });
    tf.registerGradient({
      kernelName: GATHER_ROWS_KERNEL,
      inputsToSave: ["x", "indices"],
      gradFunc: (dy, saved) => {
        const [x, indices] = saved;
        return {
          x: () =>
            tf.engine().runKernel("UnsortedSegmentSum", { x: dy as tf.Tensor, segmentIds: indices }, {
              numSegments: x.shape[0],
            }) as tf.Tensor,
          indices: () => tf.zerosLike(indices),
        };
      },
    });
    edgeGradsRegistered = true;
  }
  report.registered.push(EDGE_REDUCE_KERNEL, EDGE_REDUCE_GRAD_K_KERNEL, GATHER_ROWS_KERNEL);

  if (!geluGradRegistered) {
    tf.registerGradient({
      kernelName: GELU_KERNEL,
      inputsToSave: ["x"],
      gradFunc: (dy, saved) => ({
        x: () => tf.engine().runKernel(GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x: saved[0] }) as tf.Tensor,
      }),
    });
    geluGradRegistered = true;
  }
  report.registered.push(GELU_KERNEL, GELU_GRAD_KERNEL);

  const stockSum = tf.getKernel("Sum", backendName)?.kernelFunc;
  if (stockSum) {
    replace("Sum", backendName, (args) => {
      const { inputs, backend, attrs } = args;
      const { x } = inputs as { x: TensorInfo };
      const { axis, keepDims } = attrs as { axis: number | number[]; keepDims: boolean };
      const rank = x.shape.length;
      const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))]
        .sort((a, b) => a - b);
      const leading = axes.every((a, i) => a === i);
      const trailing = axes.every((a, i) => a === rank - axes.length + i);
      if (x.dtype !== "float32" || axes.length === 0 || (!leading && !trailing)) return stockSum(args);
      const rio = io(backendName, backend);
      const keptShape = x.shape.filter((_: number, i: number) => !axes.includes(i));
      const outShape = keepDims
        ? x.shape.map((d: number, i: number) => (axes.includes(i) ? 1 : d))
        : keptShape;
      const inner = leading
        ? keptShape.reduce((a: number, b: number) => a * b, 1)
        : axes.reduce((a, i) => a * x.shape[i], 1);
      const size = x.shape.reduce((a: number, b: number) => a * b, 1);
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
    });
    report.registered.push("Sum");
  }

  if (backendName === "wasm") {
    replace("Identity", backendName, ({ inputs, backend }) => {
      const { x } = inputs as { x: TensorInfo };
      (backend as AnyBackend).incRef(x.dataId);
      return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
    });
    report.registered.push("Identity");
  }

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
      } else if (sizeA === 1 && batch > 1 && m * k <= 4096) {
        // one small A shared by a batch of B: lay the B's side by side ([k, batch*n]), one GEMM, then unpack
        const bt = scratch(0, k * batch * n), ct = scratch(1, m * batch * n);
        const wide = batch * n;
        for (let i = 0; i < batch; i++) {
          const base = i * k * n;
          if (transposeB) {
            for (let r = 0; r < n; r++) {
              for (let c = 0; c < k; c++) bt[c * wide + i * n + r] = bv[base + r * k + c];
            }
          } else {
            for (let c = 0; c < k; c++) {
              bt.set(bv.subarray(base + c * n, base + (c + 1) * n), c * wide + i * n);
            }
          }
        }
        b.sgemm(transposeA, false, m, wide, k, av, bt, ct);
        for (let i = 0; i < batch; i++) {
          for (let r = 0; r < m; r++) {
            out.set(ct.subarray(r * wide + i * n, r * wide + (i + 1) * n), (i * m + r) * n);
          }
        }
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
