/**
 * `deno task bench step`: one training step of the reference GINO on a synthetic patch (points uniform in a box,
 * standardised), timed after a warm-up.
 *
 * @module
 */

import { Rng } from "../data/rng.ts";
import { describeAdapter, initBackend, tf } from "../model/backend.ts";
import type { BackendName } from "../model/backend.ts";
import { createGino } from "../model/gino.ts";
import { REFERENCE_GINO } from "../model/config.ts";
import { latentGrid } from "../model/latent.ts";
import { autoMicroBatch, shareMicroBatch, trainStep } from "../train/step.ts";
import { Adam } from "../train/adam.ts";
import { median } from "./timing.ts";
import { formatGpuProfile, formatProfile, measureSgemm, StepProfiler } from "./profile.ts";
import { gpuEngineFor } from "../model/gpu/engine.ts";
import type { ProfiledDispatch } from "../model/gpu/engine.ts";
import type { GpuCounters } from "../model/gpu/runtime.ts";
import { SINGLE } from "../parallel/world.ts";
import type { World } from "../parallel/world.ts";
import { configureThreads } from "../parallel/threads.ts";
import { allReduceGradients } from "../train/reduce.ts";
import type { ReductionStats } from "../train/reduce.ts";

/** Times a training step (see the module documentation); prints a summary or JSON. */
export async function benchStep(flags: Record<string, unknown>, world: World = SINGLE): Promise<StepReport> {
  const N = flags.points as number,
    B = flags.batch as number,
    G = flags.latent as number,
    r = flags.radius as number;
  const steps = flags.steps as number;
  const threads = configureThreads(world);
  const info = await initBackend(flags.backend as BackendName);
  const pts = benchPoints(N);
  const latent = latentGrid(pts, [G, G, G]);
  const model = createGino({ ...REFERENCE_GINO, in_gno_radius: r, out_gno_radius: r });
  const t0 = performance.now();
  const geom = model.geometry(pts, latent, [G, G, G]);
  const geomMs = performance.now() - t0;
  const engine = gpuEngineFor(model);
  const micro = (flags["micro-batch"] as number | undefined) ??
    (engine ? shareMicroBatch(B, B, world.size) : shareMicroBatch(
      autoMicroBatch([{ n: N, edges: geom.stats.in.edges + geom.stats.out.edges }], [G, G, G], 64, B),
      B,
      world.size,
    ));
  // the same batch on every rank (seeded), each rank computing its share of the micro-batches
  const x = tf.randomNormal([B, N, 10], 0, 1, "float32", 1) as tf.Tensor3D;
  const y = tf.randomNormal([B, N, 10], 0, 1, "float32", 2) as tf.Tensor3D;
  const [xs, ys] = [await x.data() as Float32Array, await y.data() as Float32Array];
  const opt = new Adam(model.variables, 1e-3);
  const reduction: ReductionStats = { calls: 0, ms: 0, bytes: 0 };
  const share = { index: world.rank, count: world.size }, reduce = allReduceGradients(world, reduction);
  let peak = 0;
  const perStep: GpuCounters = { dispatches: 0, submits: 0, uploads: 0, readbacks: 0, copies: 0 };
  const profiler = flags.profile && !engine ? new StepProfiler() : undefined;
  const gpuProfile: ProfiledDispatch[] = [];
  const stepTimes: number[] = [], fwdTimes: number[] = [], reduceTimes: number[] = [];
  let profileWall = 0;
  if (engine) {
    // the engine queues steps without waiting: a block of steps and one read-back of their losses, timed as a
    // whole (per step: the block's time over its steps), after a warm-up step; forward passes (each read back)
    // timed one by one
    const trainOnce = () => engine.trainStep(geom, xs, ys, B, N, micro, opt, { share, world });
    await engine.forward(geom, xs, B, micro);
    await trainOnce();
    await engine.readLosses();
    for (let s = 0; s < steps; s++) {
      const ts = performance.now();
      await engine.forward(geom, xs, B, micro);
      fwdTimes.push(performance.now() - ts);
    }
    const before = { ...engine.counters }, r0 = reduction.ms;
    const t1 = performance.now();
    for (let s = 0; s < steps; s++) await trainOnce();
    await engine.readLosses();
    stepTimes.push((performance.now() - t1) / steps);
    reduceTimes.push((reduction.ms - r0) / steps);
    for (const k of Object.keys(perStep) as (keyof GpuCounters)[]) {
      perStep[k] = (engine.counters[k] - before[k]) / steps;
    }
    peak = Math.max(peak, Deno.memoryUsage().rss);
    if (flags.profile) {
      // every dispatch in its own timed pass (read back each step): slower than the steps timed above
      engine.profile = gpuProfile;
      const tp = performance.now();
      for (let s = 0; s < steps; s++) await trainOnce();
      await engine.readLosses();
      profileWall = performance.now() - tp;
      engine.profile = undefined;
    }
  }
  for (let s = 0; !engine && s < steps + 1; s++) {
    const ts = performance.now();
    if (!profiler) {
      for (let s0 = 0, i = 0; s0 < B; s0 += micro, i++) {
        // forward of this rank's share of the batch, micro-batch by micro-batch
        if (i % world.size !== world.rank) continue;
        const out = tf.tidy(() =>
          model.forwardGeometry(geom, x.slice([s0, 0, 0], [Math.min(micro, B - s0), -1, -1]))
        );
        await out.data();
        out.dispose();
      }
    }
    const tf0 = performance.now() - ts;
    const t1 = performance.now(), r0 = reduction.ms;
    if (profiler && s === 1) profiler.install(); // after the warm-up step
    const run = () => trainStep(model, geom, x, y, N, micro, opt, { share, reduce });
    if (profiler && s > 0) await profiler.step(run);
    else await run();
    const dt = performance.now() - t1;
    peak = Math.max(peak, Deno.memoryUsage().rss);
    if (s > 0) {
      stepTimes.push(dt);
      fwdTimes.push(tf0);
      reduceTimes.push(reduction.ms - r0);
    }
  }
  const res = {
    backend: info.backend,
    blas: info.kernels?.blas ?? null,
    points: N,
    batch: B,
    micro_batch: micro,
    latent: G,
    radius: r,
    edges_in: geom.stats.in.edges,
    edges_out: geom.stats.out.edges,
    empty_latent_share: geom.stats.in.emptyShare,
    empty_point_share: geom.stats.out.emptyShare,
    geometry_ms: geomMs,
    step_ms: median(stepTimes),
    forward_ms: median(fwdTimes),
    peak_rss_mb: Math.max(peak / 2 ** 20, peakRssMiB()),
    parameters: model.parameterCount,
    ranks: world.size,
    mpi: world.size > 1 ? world.description : null,
    blas_threads: threads ?? null,
    allreduce_ms: median(reduceTimes),
    allreduce_bytes: reduction.bytes,
    adapter: info.adapter ? describeAdapter(info.adapter) : null,
    gpu_memory_mb: engine ? (engine.bytes + (gpuMemoryMiB() ?? 0) * 2 ** 20) / 2 ** 20 : gpuMemoryMiB(),
    gpu_engine: engine !== undefined,
    gpu_pass: engine ? engine.passSize(geom) : null,
    gpu_per_step: engine ? perStep : null,
  };
  if (world.rank !== 0) {
    // nothing printed by the other ranks
  } else if (flags.json) console.log(JSON.stringify(res));
  else {
    console.log(
      `backend ${res.backend}${res.blas ? ` + BLAS ${res.blas}` : ""}; N=${N} B=${B}${
        micro < B ? ` (micro-batches of ${micro})` : ""
      } ` +
        `latent ${G}^3 r=${r}: edges in ${res.edges_in} / out ${res.edges_out} ` +
        `(empty latent ${(100 * res.empty_latent_share).toFixed(0)}%, empty points ${
          (100 * res.empty_point_share).toFixed(0)
        }%)`,
    );
    console.log(
      `step ${res.step_ms.toFixed(engine ? 1 : 0)} ms (${
        engine ? `${steps} steps queued, one read-back, time per step` : `median of ${steps}`
      }), forward ${profiler ? "not timed under --profile" : `${res.forward_ms.toFixed(0)} ms`}, ` +
        `geometry ${geomMs.toFixed(0)} ms (once per patch), peak RSS ${res.peak_rss_mb.toFixed(0)} MiB`,
    );
    if (res.adapter) {
      console.log(
        `GPU: ${res.adapter}; engine (passes of up to ${res.gpu_pass} windows); GPU memory held ${
          res.gpu_memory_mb === null ? "not reported" : `${res.gpu_memory_mb.toFixed(0)} MiB`
        }`,
      );
      const c = perStep, f = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(3));
      console.log(
        `GPU work per step: ${f(c.dispatches)} dispatches, ${f(c.submits)} submissions, ` +
          `${f(c.uploads)} uploads, ${f(c.readbacks)} read-backs, ${f(c.copies)} buffer copies/clears`,
      );
    }
    if (world.size > 1) {
      console.log(
        `${world.size} ranks (${world.description}), ${threads} BLAS thread(s) each: all-reduce ` +
          `${res.allreduce_ms.toFixed(1)} ms and ${(res.allreduce_bytes / 2 ** 20).toFixed(1)} MiB per step`,
      );
    }
  }
  if (engine && flags.profile && world.rank === 0) {
    console.log(
      gpuProfile.length
        ? formatGpuProfile(gpuProfile, steps, profileWall)
        : "(this adapter offers no GPU timestamps: no per-dispatch times)",
    );
    if (flags.json) {
      const rate = (x: number | undefined, ms: number) => (x && ms > 0 ? x / (ms * 1e6) : null);
      const rows = gpuProfile.map((d) => ({ ...d, gflops: rate(d.flops, d.ms), gbs: rate(d.bytes, d.ms) }));
      console.log(JSON.stringify({ gpu_profile: rows, steps, wall_ms: profileWall }));
    }
  }
  engine?.dispose();
  if (profiler) {
    profiler.uninstall();
    const report = profiler.report();
    if (world.rank === 0) {
      console.log(formatProfile(report, measureSgemm()));
      if (flags.json) console.log(JSON.stringify({ profile: report, steps }));
    }
  }
  geom.dispose();
  model.dispose();
  return res;
}

/** GPU memory the backend reports for its tensors (webgpu: bytes in GPU buffers), MiB; null where none. */
function gpuMemoryMiB(): number | null {
  const m = tf.memory() as { numBytesInGPU?: number; numBytesInGPUAllocated?: number };
  const b = m.numBytesInGPUAllocated ?? m.numBytesInGPU;
  return typeof b === "number" ? b / 2 ** 20 : null;
}

/** The benchmark's patch: `n` points uniform in the unit cube (seeded), standardised per axis (ddof = 1). */
export function benchPoints(n: number): Float32Array {
  const rng = new Rng(1);
  const raw = Float64Array.from({ length: n * 3 }, () => rng.next());
  const pts = new Float32Array(n * 3);
  for (let a = 0; a < 3; a++) {
    let s = 0, s2 = 0;
    for (let i = 0; i < n; i++) s += raw[i * 3 + a];
    const mean = s / n;
    for (let i = 0; i < n; i++) s2 += (raw[i * 3 + a] - mean) ** 2;
    const std = Math.sqrt(s2 / (n - 1));
    for (let i = 0; i < n; i++) pts[i * 3 + a] = (raw[i * 3 + a] - mean) / std;
  }
  return pts;
}

/** The process's peak resident set (VmHWM, MiB), or the current one where /proc is not readable. */
export function peakRssMiB(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/^VmHWM:\s+(\d+) kB/m);
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux, or no permission
  }
  return Deno.memoryUsage().rss / 2 ** 20;
}

/** What {@linkcode benchStep} measured (also its `--json` output). */
export type StepReport = Record<string, unknown> & {
  step_ms: number;
  forward_ms: number;
  allreduce_ms: number;
  allreduce_bytes: number;
  peak_rss_mb: number;
};
