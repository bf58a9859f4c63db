/**
 * `deno task bench gemm --backend webgpu`: the GPU engine's matrix products at the shapes one training step of
 * the reference GINO runs (taken from the engine's own plans for `--case`, one pass of the whole batch), each on
 * random data: its GPU time (GPU timestamps where the adapter offers them, else wall time around repeated
 * dispatches and one read-back), GFLOP/s and GB/s, the largest error against a float64 product on the host, the
 * CPU path's product on the same shape (the system BLAS's sgemm) with its time and rate, and beside each row
 * product its variant with 8 rows per invocation (an 8 x 8 register tile at tile width 64), timed in the same run.
 *
 * @module
 */

import { Rng } from "../data/rng.ts";
import { describeAdapter, initBackend } from "../model/backend.ts";
import { createGino } from "../model/gino.ts";
import { REFERENCE_GINO } from "../model/config.ts";
import { latentGrid } from "../model/latent.ts";
import { stepDispatches } from "../model/gpu/census.ts";
import type { ListedDispatch } from "../model/gpu/census.ts";
import { GpuRuntime, Recorder } from "../model/gpu/runtime.ts";
import type { Dispatch, KernelSpec } from "../model/gpu/runtime.ts";
import { rowGemmGroups, rowGemmKernel, rowsFor, rowVariantOf, SPLIT_SUM } from "../model/gpu/gemm.ts";
import { erf32 } from "../model/kernels/erf.ts";
import { openBlas } from "../model/kernels/blas.ts";
import { benchPoints } from "./step.ts";
import type { StepCase } from "./torch.ts";
import { median } from "./timing.ts";

/** A matrix product of the engine: its kind, shape, kernel and where the engine uses it. */
export interface GemmShape {
  /** `row`: C[R, N] = A[R, K] op(B); `wgrad`: G[K, N] += X[R, K]^T DY[R, N] (with the bias row when `bias`). */
  kind: "row" | "wgrad";
  /** Rows (the long dimension), output columns, inner (row) or gradient rows (wgrad). */
  R: number;
  N: number;
  K: number;
  /** The kernel (and, for a weight gradient, its splits of rows and the partial products they make). */
  spec: KernelSpec;
  splits?: number;
  partials?: number;
  /** The engine's uniforms for it. */
  values: Record<string, number>;
  /** The labels of the dispatches that run it, and how many per step. */
  labels: string[];
}

/** The distinct matrix products of one training step of `model` on `geom` with `m` windows per pass. */
export function engineGemms(dispatches: ListedDispatch[]): GemmShape[] {
  const by = new Map<string, GemmShape>();
  dispatches.forEach((d, i) => {
    let shape: Omit<GemmShape, "labels"> | undefined;
    const v = d.values;
    if (d.spec.key.startsWith("rgemm")) {
      shape = { kind: "row", R: v.R, N: v.N, K: v.K, spec: d.spec, values: v };
    } else if (d.spec.key.startsWith("wgrad")) {
      const sum = dispatches[i + 1];
      shape = {
        kind: "wgrad",
        R: v.R,
        N: v.N,
        K: v.M,
        spec: d.spec,
        splits: d.groups / (v.tilesM * v.tilesN),
        partials: sum.values.splits,
        values: v,
      };
    }
    if (!shape) return;
    const key = `${shape.spec.key}:${shape.R}:${shape.N}:${shape.K}`;
    const have = by.get(key);
    const label = d.label.replace(/ \(partial products\)$/, "");
    if (have) have.labels.push(label);
    else by.set(key, { ...shape, labels: [label] });
  });
  return [...by.values()];
}

/** A product's result on the GPU and on the host. */
export interface GemmRun {
  /** GPU milliseconds per product (both dispatches of a weight gradient). */
  gpuMs: number;
  /** Largest |gpu - host| over the largest |host|. */
  error: number;
  /** The product's result after the runs. */
  result: Float32Array;
}

/** Runs `shape` on random data (seeded) `repeats` times on `rt`: time per run and the error of its result. */
export async function runGemm(rt: GpuRuntime, shape: GemmShape, repeats = 5, seed = 1): Promise<GemmRun> {
  const rng = new Rng(seed);
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const bufs: GPUBuffer[] = [];
  const upload = (data: Float32Array) => {
    const b = rt.buffer(data.byteLength, "bench gemm");
    rt.write(b, 0, data);
    bufs.push(b);
    return b;
  };
  const { R, N, K } = shape;
  const rec = new Recorder(rt, "bench gemm");
  let expect: Float64Array, out: GPUBuffer, outLen: number;
  if (shape.kind === "row") {
    const key = shape.spec.key;
    const f = (flag: string) => key.includes(`_${flag}`);
    const bT = f("bt");
    const a = rand(R * K), b = rand(K * N), c0 = rand(R * N);
    const bias = rand(N), add = rand(R * N), dm = rand(R * N);
    // the spectral addend: modes of R / g3 columns, and a table [g3, mz] (cos, then sin)
    const { g3, mz } = shape.values;
    const sr = rand(f("spec") ? (R / g3) * mz * N : 0), si = rand(sr.length), tab = rand(2 * g3 * mz);
    const buffers: Record<string, GPUBuffer> = { A: upload(a), B: upload(b), C: upload(c0) };
    if (f("bias")) buffers.BIAS = upload(bias);
    if (f("add")) buffers.ADD = upload(add);
    if (f("spec")) Object.assign(buffers, { SR: upload(sr), SI: upload(si), TAB: upload(tab) });
    if (f("muld")) buffers.DM = upload(dm);
    if (f("gelu")) buffers.DOUT = upload(new Float32Array(R * N));
    const values = { ...shape.values, aOff: 0, bOff: 0, cOff: 0, biasOff: 0, addOff: 0, dOff: 0, tOff: 0 };
    const groups = rowGemmGroups(R, N, rowVariantOf(key).rows).groups;
    rec.add(rt.kernel(shape.spec), { groups }, values, buffers, "gemm");
    expect = new Float64Array(R * N);
    for (let m = 0; m < R; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[m * K + k] * (bT ? b[n * K + k] : b[k * N + n]);
        const o = m * N + n;
        if (f("bias")) s += bias[n];
        if (f("add")) s += add[o];
        if (f("spec")) {
          const col = Math.floor(m / g3), z = m % g3;
          for (let q = 0; q < mz; q++) {
            const at = (col * mz + q) * N + n;
            s += tab[z * mz + q] * sr[at] - tab[(g3 + z) * mz + q] * si[at];
          }
        }
        if (f("gelu")) s = 0.5 * s * (1 + erf32(s / Math.SQRT2));
        if (f("muld")) s *= dm[o];
        expect[o] = s;
      }
    }
    if (f("accum")) {
      // every run adds once more: the result after `repeats + 1` runs (the check run included)
      for (let o = 0; o < R * N; o++) expect[o] = c0[o] + (repeats + 1) * expect[o];
    }
    out = buffers.C;
    outLen = R * N;
  } else {
    const bias = shape.spec.key.includes("_bias"), rowsP = K + (bias ? 1 : 0);
    const x = rand(R * K), dy = rand(R * N);
    const P = rt.buffer(4 * shape.partials! * rowsP * N, "bench gemm partials");
    bufs.push(P);
    out = upload(new Float32Array(rowsP * N));
    const values = { ...shape.values, xOff: 0, dOff: 0 };
    const groups = shape.values.tilesM * shape.values.tilesN * shape.splits!;
    rec.add(rt.kernel(shape.spec), { groups }, values, { X: upload(x), DY: upload(dy), P }, "gemm");
    rec.add(
      rt.kernel(SPLIT_SUM),
      { groups: Math.ceil((rowsP * N) / 16) },
      { n: rowsP * N, splits: shape.partials!, oOff: 0 },
      { P, OUT: out },
      "gemm sum",
    );
    expect = new Float64Array(rowsP * N);
    for (let r = 0; r < R; r++) {
      for (let n = 0; n < N; n++) {
        const d = dy[r * N + n];
        for (let m = 0; m < K; m++) expect[m * N + n] += x[r * K + m] * d;
        if (bias) expect[K * N + n] += d;
      }
    }
    // accumulated into G: after repeats + 1 runs
    for (let o = 0; o < expect.length; o++) expect[o] *= repeats + 1;
    outLen = rowsP * N;
  }
  const dispatches = rec.finish();
  const ms: number[] = [];
  // the check run, then the timed ones
  await runOnce(rt, dispatches);
  for (let i = 0; i < repeats; i++) ms.push(await runOnce(rt, dispatches));
  const enc = rt.device.createCommandEncoder();
  const read = rt.readAfterSubmit(enc, out, 0, 4 * outLen);
  rt.submit(enc);
  const got = new Float32Array(await read());
  let worst = 0, scale = 0;
  for (let o = 0; o < outLen; o++) {
    worst = Math.max(worst, Math.abs(got[o] - expect[o]));
    scale = Math.max(scale, Math.abs(expect[o]));
  }
  rec.destroy();
  for (const b of bufs) b.destroy();
  return { gpuMs: median(ms), error: worst / Math.max(scale, 1e-30), result: got };
}

/** Runs the dispatches once; GPU ms (timestamps where offered, else wall time including a read-back). */
async function runOnce(rt: GpuRuntime, dispatches: Dispatch[]): Promise<number> {
  const enc = rt.device.createCommandEncoder();
  const timed = rt.encodeTimed(enc, dispatches);
  if (timed) {
    rt.submit(enc);
    return (await timed()).reduce((a, b) => a + b, 0);
  }
  const t0 = performance.now();
  rt.encode(enc, dispatches);
  rt.submit(enc);
  await rt.idle();
  return performance.now() - t0;
}

/** The CPU path's product on the same shape (system BLAS sgemm): median ms, or undefined without a BLAS. */
function cpuGemm(shape: GemmShape, repeats: number): number | undefined {
  let blas;
  try {
    blas = openBlas();
  } catch {
    return undefined;
  }
  const { R, N, K } = shape;
  const ts: number[] = [];
  if (shape.kind === "row") {
    const a = new Float32Array(R * K).fill(0.5), b = new Float32Array(K * N).fill(0.25);
    const c = new Float32Array(R * N);
    for (let i = 0; i <= repeats; i++) {
      const t0 = performance.now();
      blas.sgemm(false, shape.spec.key.includes("_bt"), R, N, K, a, b, c);
      if (i) ts.push(performance.now() - t0);
    }
  } else {
    const x = new Float32Array(R * K).fill(0.5), dy = new Float32Array(R * N).fill(0.25);
    const g = new Float32Array(K * N);
    for (let i = 0; i <= repeats; i++) {
      const t0 = performance.now();
      blas.sgemm(true, false, K, N, R, x, dy, g, 1);
      if (i) ts.push(performance.now() - t0);
    }
  }
  blas.close();
  return median(ts);
}

/** One line of the report. */
export interface GemmReport {
  case: string;
  kind: "row" | "wgrad";
  kernel: string;
  R: number;
  N: number;
  K: number;
  per_step: number;
  used_by: string[];
  gpu_ms: number;
  gpu_gflops: number;
  gpu_gbs: number;
  cpu_ms: number | null;
  cpu_gflops: number | null;
  error: number;
  /** The same row product with 8 rows per invocation (the 8 x 8 register tile): GPU ms and error; null if none. */
  rows8_ms: number | null;
  rows8_error: number | null;
}

/**
 * A row product of 4 rows per invocation as its 8-row variant (see `RowVariant.rows`), where the variant applies
 * (the spectral epilogue needs the grid's last size a multiple of 8); undefined otherwise.
 */
function rowsVariant(s: GemmShape, g3: number): GemmShape | undefined {
  if (s.kind !== "row") return undefined;
  const v = rowVariantOf(s.spec.key);
  if (v.rows === 8 || rowsFor(8, v.spec ?? false, g3) !== 8) return undefined;
  return { ...s, spec: rowGemmKernel({ ...v, rows: 8 }) };
}

/** Times every product of each case (see the module documentation); prints a table (or JSON lines). */
export async function benchGemm(
  cases: StepCase[],
  o: { backend: string; repeats: number; json: boolean },
): Promise<GemmReport[]> {
  if (o.backend !== "webgpu") {
    throw new Error(`bench gemm times the GPU engine's products: use --backend webgpu (got ${o.backend})`);
  }
  const info = await initBackend("webgpu");
  const rt = GpuRuntime.forEngine();
  const out: GemmReport[] = [];
  if (!o.json) {
    console.log(`GPU: ${info.adapter ? describeAdapter(info.adapter) : "?"}`);
  }
  for (const c of cases) {
    const model = createGino({ ...REFERENCE_GINO, in_gno_radius: c.radius, out_gno_radius: c.radius });
    const pts = benchPoints(c.points), grid = [c.latent, c.latent, c.latent];
    const geom = model.geometry(pts, latentGrid(pts, grid), grid);
    const shapes = engineGemms(stepDispatches(model, geom, c.batch));
    if (!o.json) {
      console.log(
        `\ncase ${c.name}: ${c.points} points, batch ${c.batch}, latent ${c.latent}^3 (one pass of the batch)`,
      );
      console.log(
        `${"product".padEnd(46)} ${"R x N x K".padEnd(20)} ${"n".padStart(2)} ${"GPU ms".padStart(9)} ` +
          `${"GFLOP/s".padStart(8)} ${"GB/s".padStart(7)} ${"CPU ms".padStart(9)} ${"GFLOP/s".padStart(8)} ` +
          `${"error".padStart(8)} ${"8 rows ms".padStart(9)} ${"x".padStart(5)}`,
      );
    }
    for (const s of shapes) {
      const run = await runGemm(rt, s, o.repeats);
      const r8 = rowsVariant(s, c.latent);
      const run8 = r8 ? await runGemm(rt, r8, o.repeats) : undefined;
      const cpu = cpuGemm(s, Math.min(o.repeats, 3));
      const flops = 2 * s.R * s.N * s.K;
      const bytes = 4 * (s.R * s.K + (s.kind === "row" ? s.K * s.N + s.R * s.N : s.R * s.N));
      const r: GemmReport = {
        case: c.name,
        kind: s.kind,
        kernel: s.spec.key,
        R: s.R,
        N: s.N,
        K: s.K,
        per_step: s.labels.length,
        used_by: s.labels,
        gpu_ms: run.gpuMs,
        gpu_gflops: flops / (run.gpuMs * 1e6),
        gpu_gbs: bytes / (run.gpuMs * 1e6),
        cpu_ms: cpu ?? null,
        cpu_gflops: cpu ? flops / (cpu * 1e6) : null,
        error: run.error,
        rows8_ms: run8?.gpuMs ?? null,
        rows8_error: run8?.error ?? null,
      };
      out.push(r);
      if (o.json) console.log(JSON.stringify(r));
      else {
        const name = s.labels[0].replace(/\b\d+\b/g, "#").slice(0, 46);
        console.log(
          `${name.padEnd(46)} ${`${s.R} x ${s.N} x ${s.K}`.padEnd(20)} ${String(r.per_step).padStart(2)} ` +
            `${r.gpu_ms.toFixed(3).padStart(9)} ${r.gpu_gflops.toFixed(1).padStart(8)} ` +
            `${r.gpu_gbs.toFixed(1).padStart(7)} ${(cpu?.toFixed(3) ?? "-").padStart(9)} ` +
            `${(r.cpu_gflops?.toFixed(1) ?? "-").padStart(8)} ${r.error.toExponential(1).padStart(8)} ` +
            `${(run8?.gpuMs.toFixed(3) ?? "-").padStart(9)} ${
              (run8 ? (run8.gpuMs / run.gpuMs).toFixed(2) : "-").padStart(5)
            }`,
        );
      }
    }
    geom.dispose();
    model.dispose();
  }
  return out;
}
