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
import type { Gino, GinoGeometry } from "../model/gino.ts";
import { REFERENCE_GINO } from "../model/config.ts";
import { latentGrid } from "../model/latent.ts";
import { autoMicroBatch, shareMicroBatch, trainStep } from "../train/step.ts";
import { Adam } from "../train/adam.ts";
import { median } from "./timing.ts";
import { formatGpuProfile, formatProfile, measureSgemm, StepProfiler } from "./profile.ts";
import { gpuEngineFor } from "../model/gpu/engine.ts";
import type { GinoGpu, ProfiledDispatch } from "../model/gpu/engine.ts";
import { countsPer, formatCounters } from "../model/gpu/runtime.ts";
import type { GpuCounters } from "../model/gpu/runtime.ts";
import { SINGLE } from "../parallel/world.ts";
import type { World } from "../parallel/world.ts";
import { configureThreads } from "../parallel/threads.ts";
import { allReduceGradients } from "../train/reduce.ts";
import type { ReductionStats } from "../train/reduce.ts";

/** What a step benchmark sets up: the case, the model, one geometry per patch, the batch and the optimiser. */
interface StepSetup {
  flags: Record<string, unknown>;
  world: World;
  N: number;
  B: number;
  G: number;
  r: number;
  steps: number;
  info: Awaited<ReturnType<typeof initBackend>>;
  threads: number | undefined;
  model: Gino;
  geoms: GinoGeometry[];
  /** Milliseconds to build the first patch's geometry. */
  geomMs: number;
  engine?: GinoGpu;
  micro: number;
  x: tf.Tensor3D;
  y: tf.Tensor3D;
  xs: Float32Array;
  ys: Float32Array;
  opt: Adam;
  reduction: ReductionStats;
  share: { index: number; count: number };
  reduce: ReturnType<typeof allReduceGradients>;
}

/** What the timed steps gave. */
interface Timed {
  stepTimes: number[];
  fwdTimes: number[];
  reduceTimes: number[];
  peak: number;
  /** The engine's counters per step after the first pass over the patches, and its host time per step. */
  perStep?: GpuCounters;
  hostMs?: number;
  logEvery?: number;
  gpuProfile: ProfiledDispatch[];
  profileWall: number;
  profiler?: StepProfiler;
}

/** Times a training step (see the module documentation); prints a summary or JSON. */
export async function benchStep(flags: Record<string, unknown>, world: World = SINGLE): Promise<StepReport> {
  const c = await setUpStep(flags, world);
  const t = c.engine ? await timeEngineSteps(c) : await timeTfjsSteps(c);
  const res = stepReport(c, t);
  if (world.rank === 0) {
    if (flags.json) console.log(JSON.stringify(res));
    else printStep(c, t, res);
  }
  if (c.engine && flags.profile && world.rank === 0) {
    console.log(
      t.gpuProfile.length
        ? formatGpuProfile(t.gpuProfile, c.steps, t.profileWall)
        : "(this adapter offers no GPU timestamps: no per-dispatch times)",
    );
    if (flags.json) {
      const rate = (x: number | undefined, ms: number) => (x && ms > 0 ? x / (ms * 1e6) : null);
      const rows = t.gpuProfile.map((d) => ({ ...d, gflops: rate(d.flops, d.ms), gbs: rate(d.bytes, d.ms) }));
      console.log(JSON.stringify({ gpu_profile: rows, steps: c.steps, wall_ms: t.profileWall }));
    }
  }
  c.engine?.dispose();
  if (t.profiler) {
    t.profiler.uninstall();
    const report = t.profiler.report();
    if (world.rank === 0) {
      console.log(formatProfile(report, measureSgemm()));
      if (flags.json) console.log(JSON.stringify({ profile: report, steps: c.steps }));
    }
  }
  tf.dispose([c.x, c.y]);
  for (const g of c.geoms) g.dispose();
  c.model.dispose();
  return res;
}

/** The backend, the reference model, `--patches` geometries (each its own seeded points), a batch, Adam. */
async function setUpStep(flags: Record<string, unknown>, world: World): Promise<StepSetup> {
  const N = flags.points as number, B = flags.batch as number, G = flags.latent as number;
  const r = flags.radius as number, patches = (flags.patches as number | undefined) ?? 1;
  const threads = configureThreads(world);
  const info = await initBackend(flags.backend as BackendName);
  const model = createGino({ ...REFERENCE_GINO, in_gno_radius: r, out_gno_radius: r });
  const geoms: GinoGeometry[] = [];
  let geomMs = 0;
  for (let p = 0; p < patches; p++) {
    const pts = benchPoints(N, p + 1);
    const t0 = performance.now();
    geoms.push(model.geometry(pts, latentGrid(pts, [G, G, G]), [G, G, G]));
    if (p === 0) geomMs = performance.now() - t0;
  }
  const engine = gpuEngineFor(model);
  const stats = geoms[0].stats;
  const micro = (flags["micro-batch"] as number | undefined) ??
    (engine ? shareMicroBatch(B, B, world.size) : shareMicroBatch(
      autoMicroBatch([{ n: N, edges: stats.in.edges + stats.out.edges }], [G, G, G], 64, B),
      B,
      world.size,
    ));
  engine?.reserve(geoms, B, micro);
  // the same batch on every rank (seeded), each rank computing its share of the micro-batches
  const x = tf.randomNormal([B, N, 10], 0, 1, "float32", 1) as tf.Tensor3D;
  const y = tf.randomNormal([B, N, 10], 0, 1, "float32", 2) as tf.Tensor3D;
  const [xs, ys] = [await x.data() as Float32Array, await y.data() as Float32Array];
  const reduction: ReductionStats = { calls: 0, ms: 0, bytes: 0 };
  return {
    flags,
    world,
    N,
    B,
    G,
    r,
    steps: flags.steps as number,
    info,
    threads,
    model,
    geoms,
    geomMs,
    engine,
    micro,
    x,
    y,
    xs,
    ys,
    opt: new Adam(model.variables, 1e-3),
    reduction,
    share: { index: world.rank, count: world.size },
    reduce: allReduceGradients(world, reduction),
  };
}

/**
 * The engine queues steps without waiting. After a first pass over the patches (a forward and a step on each:
 * plans recorded, geometry uploaded), `--steps` steps go round the patches, their losses read every
 * `--log-every` steps (by default about once a second at the measured step time, as training does), timed as a
 * whole (as training reads them in an epoch: those of the steps asked for at the read before); what the GPU was
 * asked per step is counted over them. Forward passes (each read back) are timed one by one.
 */
async function timeEngineSteps(c: StepSetup): Promise<Timed> {
  const engine = c.engine!, P = c.geoms.length;
  const t: Timed = { stepTimes: [], fwdTimes: [], reduceTimes: [], peak: 0, gpuProfile: [], profileWall: 0 };
  const train = (p: number) =>
    engine.trainStep(c.geoms[p % P], c.xs, c.ys, c.B, c.N, c.micro, c.opt, {
      share: c.share,
      world: c.world,
    });
  for (let p = 0; p < P; p++) {
    await engine.forward(c.geoms[p], c.xs, c.B, c.micro);
    await train(p);
  }
  await engine.readLosses();
  const tw = performance.now();
  await train(0);
  await engine.readLosses();
  const given = c.flags["log-every"] as number | undefined;
  const every = given ??
    Math.max(1, Math.min(256, Math.floor(1000 / Math.max(performance.now() - tw, 1e-3))));
  for (let s = 0; s < c.steps; s++) {
    const ts = performance.now();
    await engine.forward(c.geoms[(s + 1) % P], c.xs, c.B, c.micro);
    t.fwdTimes.push(performance.now() - ts);
  }
  // reads as training makes them: a block in flight before the timed steps (and both staging buffers made)
  for (let k = 0; k < 2; k++) {
    await train(0);
    await engine.readEarlierLosses();
  }
  engine.rt.resetCounters();
  const before = { ...engine.counters }, r0 = c.reduction.ms, t1 = performance.now();
  for (let s = 0; s < c.steps; s++) {
    await train(s + 1);
    if ((s + 1) % every === 0) await engine.readEarlierLosses(); // as training reads in an epoch
  }
  const counted = { ...engine.counters }, host = { ...engine.rt.hostTimes }, tEnd = performance.now();
  await engine.readLosses(); // the block's last steps, if not read: timed, not counted
  t.stepTimes.push((performance.now() - t1) / c.steps);
  t.reduceTimes.push((c.reduction.ms - r0) / c.steps);
  t.hostMs = (tEnd - t1 - host.submitMs - host.waitMs) / c.steps;
  t.perStep = countsPer(counted, before, c.steps);
  t.logEvery = every;
  t.peak = Deno.memoryUsage().rss;
  if (c.flags.profile) {
    // every dispatch in its own timed pass (read back each step): slower than the steps timed above
    engine.profile = t.gpuProfile;
    const tp = performance.now();
    for (let s = 0; s < c.steps; s++) await train(s);
    await engine.readLosses();
    t.profileWall = performance.now() - tp;
    engine.profile = undefined;
  }
  return t;
}

/** Steps through tfjs ops after a warm-up step, each timed (with `--profile`, by model part). */
async function timeTfjsSteps(c: StepSetup): Promise<Timed> {
  const profiler = c.flags.profile ? new StepProfiler() : undefined;
  const t: Timed = { stepTimes: [], fwdTimes: [], reduceTimes: [], peak: 0, gpuProfile: [], profileWall: 0 };
  const P = c.geoms.length;
  for (let s = 0; s < c.steps + 1; s++) {
    const geom = c.geoms[s % P];
    const ts = performance.now();
    for (let s0 = 0, i = 0; !profiler && s0 < c.B; s0 += c.micro, i++) {
      // forward of this rank's share of the batch, micro-batch by micro-batch
      if (i % c.world.size !== c.world.rank) continue;
      const out = tf.tidy(() =>
        c.model.forwardGeometry(geom, c.x.slice([s0, 0, 0], [Math.min(c.micro, c.B - s0), -1, -1]))
      );
      await out.data();
      out.dispose();
    }
    const tf0 = performance.now() - ts;
    const t1 = performance.now(), r0 = c.reduction.ms;
    if (profiler && s === 1) profiler.install(); // after the warm-up step
    const run = () =>
      trainStep(c.model, geom, c.x, c.y, c.N, c.micro, c.opt, { share: c.share, reduce: c.reduce });
    if (profiler && s > 0) await profiler.step(run);
    else await run();
    const dt = performance.now() - t1;
    t.peak = Math.max(t.peak, Deno.memoryUsage().rss);
    if (s > 0) {
      t.stepTimes.push(dt);
      t.fwdTimes.push(tf0);
      t.reduceTimes.push(c.reduction.ms - r0);
    }
  }
  t.profiler = profiler;
  return t;
}

/** The figures of a step benchmark (its `--json` line). */
function stepReport(c: StepSetup, t: Timed): StepReport {
  const stats = c.geoms[0].stats, engine = c.engine;
  return {
    backend: c.info.backend,
    blas: c.info.kernels?.blas ?? null,
    points: c.N,
    batch: c.B,
    micro_batch: c.micro,
    latent: c.G,
    radius: c.r,
    patches: c.geoms.length,
    edges_in: stats.in.edges,
    edges_out: stats.out.edges,
    empty_latent_share: stats.in.emptyShare,
    empty_point_share: stats.out.emptyShare,
    geometry_ms: c.geomMs,
    step_ms: median(t.stepTimes),
    forward_ms: median(t.fwdTimes),
    peak_rss_mb: Math.max(t.peak / 2 ** 20, peakRssMiB()),
    parameters: c.model.parameterCount,
    ranks: c.world.size,
    mpi: c.world.size > 1 ? c.world.description : null,
    blas_threads: c.threads ?? null,
    allreduce_ms: median(t.reduceTimes),
    allreduce_bytes: c.reduction.bytes,
    adapter: c.info.adapter ? describeAdapter(c.info.adapter) : null,
    gpu_memory_mb: engine ? (engine.bytes + (gpuMemoryMiB() ?? 0) * 2 ** 20) / 2 ** 20 : gpuMemoryMiB(),
    gpu_engine: engine !== undefined,
    gpu_pass: engine ? engine.passSize(c.geoms[0]) : null,
    gpu_per_step: t.perStep ?? null,
    gpu_host_ms: t.hostMs ?? null,
    log_every: t.logEvery ?? null,
  };
}

/** The summary lines of a step benchmark. */
function printStep(c: StepSetup, t: Timed, res: StepReport): void {
  const engine = c.engine;
  console.log(
    `backend ${res.backend}${res.blas ? ` + BLAS ${res.blas}` : ""}; N=${c.N} B=${c.B}${
      c.micro < c.B ? ` (micro-batches of ${c.micro})` : ""
    } latent ${c.G}^3 r=${c.r}${c.geoms.length > 1 ? `, ${c.geoms.length} patches` : ""}: edges in ` +
      `${res.edges_in} / out ${res.edges_out} (empty latent ${
        (100 * Number(res.empty_latent_share)).toFixed(0)
      }%, ` +
      `empty points ${(100 * Number(res.empty_point_share)).toFixed(0)}%)`,
  );
  console.log(
    `step ${res.step_ms.toFixed(engine ? 1 : 0)} ms (${
      engine
        ? `${c.steps} steps queued, losses read every ${t.logEvery}; time per step; host ${
          t.hostMs!.toFixed(2)
        } ms of it outside submissions and waits`
        : `median of ${c.steps}`
    }), forward ${t.profiler ? "not timed under --profile" : `${res.forward_ms.toFixed(0)} ms`}, ` +
      `geometry ${c.geomMs.toFixed(0)} ms (once per patch), peak RSS ${res.peak_rss_mb.toFixed(0)} MiB`,
  );
  if (res.adapter) {
    const mem = res.gpu_memory_mb as number | null;
    console.log(
      `GPU: ${res.adapter}; engine (passes of up to ${res.gpu_pass} windows); GPU memory held ${
        mem === null ? "not reported" : `${mem.toFixed(0)} MiB`
      }`,
    );
    if (t.perStep) console.log(`GPU work per step: ${formatCounters(t.perStep)}`);
  }
  if (c.world.size > 1) {
    console.log(
      `${c.world.size} ranks (${c.world.description}), ${c.threads} BLAS thread(s) each: all-reduce ` +
        `${res.allreduce_ms.toFixed(1)} ms and ${(res.allreduce_bytes / 2 ** 20).toFixed(1)} MiB per step`,
    );
  }
}

/** GPU memory the backend reports for its tensors (webgpu: bytes in GPU buffers), MiB; null where none. */
function gpuMemoryMiB(): number | null {
  const m = tf.memory() as { numBytesInGPU?: number; numBytesInGPUAllocated?: number };
  const b = m.numBytesInGPUAllocated ?? m.numBytesInGPU;
  return typeof b === "number" ? b / 2 ** 20 : null;
}

/**
 * A benchmark patch: `n` points uniform in the unit cube (seeded; `seed` 1 is the patch of every case),
 * standardised per axis (ddof = 1).
 */
export function benchPoints(n: number, seed = 1): Float32Array {
  const rng = new Rng(seed);
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
