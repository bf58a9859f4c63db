/**
 * `deno task bench step --profile`: where a training step's time goes. Every kernel the backend runs is timed and
 * booked to the model part that ran it ({@linkcode part} labels: GNO kernels and reductions, lifting, each FNO
 * layer's spectral convolution, skip and activation, projection, loss, optimiser), forward or backward (a
 * backward kernel is booked to the part whose forward op it differentiates). What is left of the step's wall time
 * is host overhead: tensor disposal, reads and writes between JavaScript and the backend, and kernel dispatch.
 * Matmul FLOPs are counted, and the machine's sgemm rate is measured in the same run, to show how much of the step
 * is spent at BLAS speed.
 *
 * @module
 */

import { tf } from "../model/backend.ts";
import { setPartHook, setWorkHook } from "../model/parts.ts";
import { blasStats, openBlas } from "../model/kernels/blas.ts";

interface PartTimes {
  forward: number;
  backward: number;
}

/** What a profile measured, summed over the profiled steps. */
export interface ProfileReport {
  steps: number;
  wall_ms: number;
  parts: Record<string, PartTimes>;
  kernels: Record<string, { ms: number; calls: number }>;
  /** Kernel time per part and kernel (`Name (bwd)` for backward). */
  by_part: Record<string, Record<string, number>>;
  host: { dispose_ms: number; read_ms: number; write_ms: number };
  matmul: { gflop: number; ms: number };
  /** Every GEMM through the system BLAS (BatchMatMul and the fused kernels). */
  blas_gflop: number;
}

type Engine = {
  addTapeNode: (...args: unknown[]) => void;
  state: {
    activeTape: { gradient?: (dys: unknown) => Record<string, () => unknown> }[];
    scopeStack: { name: string }[];
  };
};

type Backend = Record<string, unknown> & {
  disposeData: (...a: unknown[]) => unknown;
  readSync: (...a: unknown[]) => unknown;
  write: (...a: unknown[]) => unknown;
};

const OUTSIDE = "(between parts)";

/** Times kernels by part while installed (see the module documentation). */
export class StepProfiler {
  #part = OUTSIDE;
  #depth = 0;
  #restore: (() => void)[] = [];
  #parts = new Map<string, PartTimes>();
  #kernels = new Map<string, { ms: number; calls: number }>();
  #byPart = new Map<string, Map<string, number>>();
  #host = { dispose_ms: 0, read_ms: 0, write_ms: 0 };
  #matmul = { gflop: 0, ms: 0 };
  #wall = 0;
  #steps = 0;
  #blasFlops = 0;

  /** Wraps the backend's kernels, the tape and the host calls; {@linkcode uninstall} undoes it. */
  install(): void {
    const backendName = tf.getBackend();
    for (const k of tf.getKernelsForBackend(backendName)) {
      const orig = k.kernelFunc;
      tf.unregisterKernel(k.kernelName, backendName);
      tf.registerKernel({
        kernelName: k.kernelName,
        backendName,
        kernelFunc: (a) => this.#kernel(k.kernelName, orig, a),
      });
      this.#restore.push(() => {
        tf.unregisterKernel(k.kernelName, backendName);
        tf.registerKernel(k);
      });
    }
    this.#wrapTape();
    this.#wrapHost(tf.backend() as unknown as Backend);
    setPartHook((name, fn) => this.#within(name, fn));
    this.#restore.push(() => setPartHook(undefined));
    // work outside the kernels (Adam in place) is booked as a kernel call of its own name
    setWorkHook((name, fn) =>
      this.#kernel(name, () => (fn(), []), { inputs: {}, backend: tf.backend(), attrs: {} })
    );
    this.#restore.push(() => setWorkHook(undefined));
  }

  /** Restores everything {@linkcode install} wrapped. */
  uninstall(): void {
    for (const r of this.#restore.reverse()) r();
    this.#restore = [];
  }

  /** Runs one step under the profile, adding its wall time. */
  async step<T>(fn: () => T | Promise<T>): Promise<T> {
    const t0 = performance.now(), f0 = blasStats.flops;
    try {
      return await fn();
    } finally {
      this.#wall += performance.now() - t0;
      this.#blasFlops += blasStats.flops - f0;
      this.#steps++;
    }
  }

  /** The sums so far. */
  report(): ProfileReport {
    return {
      steps: this.#steps,
      wall_ms: this.#wall,
      parts: Object.fromEntries(this.#parts),
      kernels: Object.fromEntries(this.#kernels),
      by_part: Object.fromEntries([...this.#byPart].map(([k, v]) => [k, Object.fromEntries(v)])),
      host: { ...this.#host },
      matmul: { ...this.#matmul },
      blas_gflop: this.#blasFlops / 1e9,
    };
  }

  #within<T>(name: string, fn: () => T): T {
    const prev = this.#part;
    this.#part = name;
    try {
      return fn();
    } finally {
      this.#part = prev;
    }
  }

  #kernel(name: string, orig: tf.KernelFunc, a: Parameters<tf.KernelFunc>[0]) {
    if (this.#depth > 0) return orig(a);
    this.#depth++;
    const t0 = performance.now();
    try {
      return orig(a);
    } finally {
      const dt = performance.now() - t0;
      this.#depth--;
      const k = this.#kernels.get(name) ?? { ms: 0, calls: 0 };
      k.ms += dt;
      k.calls++;
      this.#kernels.set(name, k);
      const backward = (tf.engine() as unknown as Engine).state.scopeStack.some((s) => s.name === "backward");
      const p = this.#parts.get(this.#part) ?? { forward: 0, backward: 0 };
      p[backward ? "backward" : "forward"] += dt;
      this.#parts.set(this.#part, p);
      const key = `${name}${backward ? " (bwd)" : ""}`;
      const bp = this.#byPart.get(this.#part) ?? new Map<string, number>();
      bp.set(key, (bp.get(key) ?? 0) + dt);
      this.#byPart.set(this.#part, bp);
      if (name === "BatchMatMul" || name === "_FusedMatMul") {
        this.#matmul.gflop += matmulFlops(a) / 1e9;
        this.#matmul.ms += dt;
      }
    }
  }

  /** Books each backward op to the part that ran its forward op. */
  #wrapTape(): void {
    const engine = tf.engine() as unknown as Engine;
    const orig = engine.addTapeNode;
    engine.addTapeNode = (...args: unknown[]) => {
      orig.apply(engine, args);
      const node = engine.state.activeTape.at(-1);
      const g = node?.gradient, forwardPart = this.#part;
      if (!node || !g) return;
      node.gradient = (dys) => {
        // a registered kernel's gradient may run kernels right away, or in the closures it returns
        const fns = this.#within(forwardPart, () => g(dys));
        return Object.fromEntries(
          Object.entries(fns).map(([k, f]) => [k, () => this.#within(forwardPart, f)]),
        );
      };
    };
    this.#restore.push(() => (engine.addTapeNode = orig));
  }

  #wrapHost(b: Backend): void {
    const wrap = (
      method: "disposeData" | "readSync" | "write",
      key: "dispose_ms" | "read_ms" | "write_ms",
    ) => {
      const orig = b[method];
      b[method] = (...args: unknown[]) => {
        if (this.#depth > 0) return orig.apply(b, args);
        const t0 = performance.now();
        try {
          return orig.apply(b, args);
        } finally {
          this.#host[key] += performance.now() - t0;
        }
      };
      this.#restore.push(() => (b[method] = orig));
    };
    wrap("disposeData", "dispose_ms");
    wrap("readSync", "read_ms");
    wrap("write", "write_ms");
  }
}

/** 2 M N K x batch of a BatchMatMul call. */
function matmulFlops(a: Parameters<tf.KernelFunc>[0]): number {
  const { a: x, b: y } = a.inputs as unknown as { a: tf.TensorInfo; b: tf.TensorInfo };
  const attrs = a.attrs as { transposeA?: boolean; transposeB?: boolean };
  const sa = x.shape, sb = y.shape;
  const m = attrs.transposeA ? sa[sa.length - 1] : sa[sa.length - 2];
  const k = attrs.transposeA ? sa[sa.length - 2] : sa[sa.length - 1];
  const n = attrs.transposeB ? sb[sb.length - 2] : sb[sb.length - 1];
  const batch = Math.max(
    sa.slice(0, -2).reduce((p, v) => p * v, 1),
    sb.slice(0, -2).reduce((p, v) => p * v, 1),
  );
  return 2 * m * n * k * batch;
}

/** The machine's sgemm rate (GFLOP/s) on shapes like the model's: [32768 x 64] @ [64 x 64], best of 5. */
export function measureSgemm(): { gflops: number; library: string } | undefined {
  let blas;
  try {
    blas = openBlas();
  } catch {
    return undefined;
  }
  const m = 32768, n = 64, k = 64;
  const a = new Float32Array(m * k).fill(0.5),
    b = new Float32Array(k * n).fill(0.25),
    c = new Float32Array(m * n);
  let best = Infinity;
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now();
    blas.sgemm(false, false, m, n, k, a, b, c);
    if (i > 0) best = Math.min(best, performance.now() - t0);
  }
  const library = blas.library;
  blas.close();
  return { gflops: (2 * m * n * k) / (best * 1e6), library };
}

/** The profile as a table (per step). */
export function formatProfile(r: ProfileReport, sgemm?: { gflops: number; library: string }): string {
  const per = (ms: number) => ms / r.steps;
  const rows = Object.entries(r.parts).sort((a, b) =>
    b[1].forward + b[1].backward - a[1].forward - a[1].backward
  );
  const kernelMs = rows.reduce((s, [, t]) => s + t.forward + t.backward, 0);
  const wall = per(r.wall_ms);
  const pct = (ms: number) => `${((100 * ms) / wall).toFixed(1)}%`.padStart(6);
  const f = (ms: number) => ms.toFixed(1).padStart(9);
  const lines = [`part                          forward  backward     total  share`];
  for (const [name, t] of rows) {
    const label = name === OUTSIDE ? "gradient sums, other kernels" : name;
    lines.push(
      `${label.padEnd(28)}${f(per(t.forward))} ${f(per(t.backward))} ${f(per(t.forward + t.backward))} ${
        pct(per(t.forward + t.backward))
      }`,
    );
  }
  const host = r.host;
  const other = wall - per(kernelMs) - per(host.dispose_ms + host.read_ms + host.write_ms);
  lines.push(`${"kernels".padEnd(28)}${" ".repeat(20)}${f(per(kernelMs))} ${pct(per(kernelMs))}`);
  lines.push(
    `${"host: dispose".padEnd(28)}${" ".repeat(20)}${f(per(host.dispose_ms))} ${pct(per(host.dispose_ms))}`,
  );
  lines.push(
    `${"host: reads (dataSync)".padEnd(28)}${" ".repeat(20)}${f(per(host.read_ms))} ${
      pct(per(host.read_ms))
    }`,
  );
  lines.push(
    `${"host: writes (uploads)".padEnd(28)}${" ".repeat(20)}${f(per(host.write_ms))} ${
      pct(per(host.write_ms))
    }`,
  );
  lines.push(`${"host: dispatch, JS, tape".padEnd(28)}${" ".repeat(20)}${f(other)} ${pct(other)}`);
  lines.push(`${"step (wall)".padEnd(28)}${" ".repeat(20)}${f(wall)}`);
  const gf = r.matmul.gflop / r.steps, mm = per(r.matmul.ms), all = r.blas_gflop / r.steps;
  lines.push(
    `BatchMatMul kernels: ${gf.toFixed(2)} GFLOP per step in ${mm.toFixed(1)} ms (${
      (gf / (mm / 1e3)).toFixed(1)
    } GFLOP/s)`,
  );
  if (sgemm) {
    const ideal = (all / sgemm.gflops) * 1e3;
    lines.push(
      `all BLAS GEMMs (fused kernels included): ${
        all.toFixed(2)
      } GFLOP per step; at this machine's sgemm rate ` +
        `(${sgemm.gflops.toFixed(1)} GFLOP/s, ${sgemm.library}, [32768x64]@[64x64]) they would take ` +
        `${ideal.toFixed(1)} ms = ${((100 * ideal) / wall).toFixed(1)}% of the step`,
    );
  }
  const top = Object.entries(r.kernels).sort((a, b) => b[1].ms - a[1].ms).slice(0, 8);
  lines.push(
    "top kernels: " +
      top.map(([k, v]) => `${k} ${per(v.ms).toFixed(1)} ms (${Math.round(v.calls / r.steps)} calls)`).join(
        ", ",
      ),
  );
  lines.push("kernels of the largest parts (ms per step):");
  for (const [name] of rows.slice(0, 6)) {
    const ks = Object.entries(r.by_part[name] ?? {}).sort((a, b) => b[1] - a[1]).slice(0, 5);
    lines.push(`  ${name}: ${ks.map(([k, v]) => `${k} ${per(v).toFixed(1)}`).join(", ")}`);
  }
  return lines.join("\n");
}

/**
 * The engine's per-dispatch GPU profile as a table (per step): dispatches grouped by label (layer numbers as #),
 * their GPU time and share, and the rates their shapes imply (GFLOP/s, GB/s of compulsory traffic), so the
 * dispatches that fall short of the GPU's peak stand out.
 */
export function formatGpuProfile(
  rows: { label: string; ms: number; flops?: number; bytes?: number }[],
  steps: number,
  wallMs: number,
): string {
  const by = new Map<string, { ms: number; n: number; flops: number; bytes: number }>();
  for (const r of rows) {
    const k = r.label.replace(/\b\d+\b/g, "#");
    const e = by.get(k) ?? { ms: 0, n: 0, flops: 0, bytes: 0 };
    e.ms += r.ms;
    e.n++;
    e.flops += r.flops ?? 0;
    e.bytes += r.bytes ?? 0;
    by.set(k, e);
  }
  const gpu = rows.reduce((a, r) => a + r.ms, 0) / steps, wall = wallMs / steps;
  const rate = (x: number, ms: number) => (ms > 0 && x > 0 ? (x / (ms * 1e6)).toFixed(1) : "-").padStart(8);
  const lines = [
    `${"dispatch (# = any layer)".padEnd(72)} per step   GPU ms   share  GFLOP/s     GB/s`,
  ];
  for (const [k, e] of [...by].sort((a, b) => b[1].ms - a[1].ms)) {
    lines.push(
      `${k.padEnd(72)} ${String(e.n / steps).padStart(8)} ${(e.ms / steps).toFixed(2).padStart(8)} ${
        (100 * e.ms / steps / wall).toFixed(1).padStart(6)
      }% ${rate(e.flops, e.ms)} ${rate(e.bytes, e.ms)}`,
    );
  }
  const flops = rows.reduce((a, r) => a + (r.flops ?? 0), 0),
    bytes = rows.reduce((a, r) => a + (r.bytes ?? 0), 0);
  lines.push(
    `${"GPU, all dispatches".padEnd(72)} ${String(rows.length / steps).padStart(8)} ${
      gpu.toFixed(2).padStart(8)
    } ${(100 * gpu / wall).toFixed(1).padStart(6)}% ${rate(flops, gpu * steps)} ${rate(bytes, gpu * steps)}`,
  );
  lines.push(
    `${"host (recording, upload, read-back wait), and GPU idle".padEnd(72)} ${"".padStart(8)} ${
      (wall - gpu).toFixed(2).padStart(8)
    } ${(100 * (wall - gpu) / wall).toFixed(1).padStart(6)}%`,
  );
  lines.push(
    `${"step (wall, each dispatch in its own timed pass)".padEnd(72)} ${"".padStart(8)} ${
      wall.toFixed(2).padStart(8)
    }`,
  );
  return lines.join("\n");
}
