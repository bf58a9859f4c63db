/**
 * The GPU training engine of the `webgpu` backend: a GINO training step as a fixed list of WGSL dispatches
 * recorded once per patch geometry and micro-batch size (pipelines, buffers and bind groups built once) and
 * replayed in one compute pass of one command buffer per step: one upload (the batch and the step's scalars), one
 * submission, and nothing read back. Nothing waits for the GPU between steps: each step's loss (and gradient norm)
 * goes into its slot of a training log on the GPU, read back for many steps at once
 * ({@linkcode GinoGpu.readLosses}); validation batches likewise ({@linkcode GinoGpu.readEvaluation}). The weights,
 * Adam's moments and the gradients live in flat GPU buffers; the model's and the optimiser's tfjs variables (on
 * tfjs's webgpu backend, on a device of its own: the engine uses nothing inside tfjs) are written in when they
 * changed (a new run, a resume, an import) and read back only when something is to read them
 * ({@linkcode GinoGpu.sync}: a checkpoint, the end of a run). The step does what `train/step.ts` does on the
 * CPU backends: the reference loss on the core points, micro-batches whose gradients are summed, optional clipping
 * of the global gradient norm, Adam with PyTorch's rule, no update when the loss is not finite (nor after it until
 * the log is read: see {@linkcode GinoGpu.readLosses}), and in data-parallel runs one all-reduce of the flat
 * gradient between the backward pass and the update (which reads the gradient back: the all-reduce runs on the
 * host).
 *
 * @module
 */

import { backendInfo, tf } from "../backend.ts";
import type { Gino, GinoGeometry } from "../gino.ts";
import type { ResidualSpec } from "../residual.ts";
import type { World } from "../../parallel/world.ts";
import { GpuRuntime, Recorder } from "./runtime.ts";
import type { Dispatch, GpuCounters, GpuLimits, Readback } from "./runtime.ts";
import { dftTables, dimsOf, packGeometry, paramLayout } from "./layout.ts";
import type { DftTables, Dims, GeometryPack, ParamLayout } from "./layout.ts";
import { evalStride, normParts, PARAMS, PlanBuilder, updatePlan } from "./plan.ts";
import { IN_SLOT, LOG_HEADER } from "./kernels.ts";
import { engineGemmRows } from "./gemm.ts";
import type { BufferSource, MicroOptions, PlanContext } from "./plan.ts";

/** The optimiser state the engine updates (the `Adam` of `train/adam.ts`). */
export interface GpuOptimizer {
  /** Updates taken (the next one is step + 1; the engine advances it when a step's loss is finite). */
  step: number;
  /** Learning rate. */
  lr: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Denominator epsilon. */
  readonly eps: number;
  /** First moments, one per model variable. */
  readonly m: tf.Variable[];
  /** Second moments, one per model variable. */
  readonly v: tf.Variable[];
}

/** Options of a training step on the engine (as `StepOptions` of `train/step.ts`). */
export interface GpuStepOptions {
  /** Residual prediction: the model's output is added to this base forecast. */
  residual?: ResidualSpec;
  /** Epsilon of the relative L2 loss's denominator (0 = the reference). */
  lossEps?: number;
  /** Clip the global gradient norm to this value (off when undefined). */
  clipNorm?: number;
  /** Compute the global gradient norm even without clipping (for {@linkcode StepLosses.gradNorms}). */
  gradNorm?: boolean;
  /** This process's micro-batches (data-parallel): those with index % count === index. */
  share?: { index: number; count: number };
  /** The processes that sum their gradients (data-parallel); one process when absent. */
  world?: World;
}

/** The GPU memory a plan needs: per window and in all, bytes, and the largest single buffer per window. */
export interface GpuMemoryEstimate {
  /** Bytes of all buffers that grow with the windows of a pass, per window. */
  perWindowBytes: number;
  /** Bytes per window of the largest of them (bounded by the adapter's largest binding). */
  largestPerWindowBytes: number;
}

/** The training steps' results read back by {@linkcode GinoGpu.readLosses}, in the order the steps were taken. */
export interface StepLosses {
  /** Each step's loss (mean over windows and core points); NaN or infinite where the step was not applied. */
  losses: number[];
  /** Each step's global gradient norm (NaN where the step computed none: no clipping, no `gradNorm`). */
  gradNorms: number[];
}

/** A dispatch timed by the profile: label, GPU milliseconds, and FLOPs and bytes where known. */
export interface ProfiledDispatch {
  /** What the dispatch computes. */
  label: string;
  /** Its GPU time, ms. */
  ms: number;
  /** Its floating-point operations, from its shape. */
  flops?: number;
  /** Its compulsory memory traffic, bytes. */
  bytes?: number;
}

/** Steps (and validation batches) whose results the logs on the GPU hold before they are read back. */
export const LOG_SLOTS = 1024;
/** Floats of the validation log. */
const EVAL_FLOATS = 16384;

/** A step taken: whether it computed a gradient norm, and its loss where the host knows it (data-parallel runs). */
interface PendingStep {
  norm: boolean;
  loss?: number;
}

/** Steps whose log copy is asked for (none where their losses are known), in their slot order. */
interface LogRead {
  steps: PendingStep[];
  read?: Readback;
}

/** Raised when a micro-batch does not fit the adapter's buffer limits. */
export class GpuMemoryError extends Error {}

/** Named, growing buffers shared by all plans; growing one invalidates the plans (a new generation). */
class Pool implements BufferSource {
  #bufs = new Map<string, { buffer: GPUBuffer; floats: number }>();
  generation = 0;
  constructor(readonly rt: GpuRuntime) {}

  get(name: string, floats: number): GPUBuffer {
    const have = this.#bufs.get(name);
    if (have && have.floats >= floats) return have.buffer;
    if (4 * floats > this.rt.limits.maxBindingBytes) {
      throw new GpuMemoryError(
        `GPU buffer '${name}' needs ${(4 * floats / 2 ** 20).toFixed(0)} MiB, more than this adapter binds ` +
          `(${(this.rt.limits.maxBindingBytes / 2 ** 20).toFixed(0)} MiB): use a smaller --micro-batch`,
      );
    }
    have?.buffer.destroy();
    const buffer = this.rt.buffer(4 * Math.max(floats, 4), `gino ${name}`);
    this.#bufs.set(name, { buffer, floats: Math.max(floats, 4) });
    this.generation++;
    return buffer;
  }

  /** Bytes held. */
  get bytes(): number {
    let b = 0;
    for (const v of this.#bufs.values()) b += 4 * v.floats;
    return b;
  }

  destroy(): void {
    for (const v of this.#bufs.values()) v.buffer.destroy();
    this.#bufs.clear();
  }
}

/** Tallies buffer sizes without allocating (to size micro-batches). */
class Sizer implements BufferSource {
  floats = new Map<string, number>();
  get(name: string, floats: number): GPUBuffer {
    this.floats.set(name, Math.max(this.floats.get(name) ?? 0, floats));
    return {} as GPUBuffer;
  }
}

interface GeoGpu {
  /** Windows per GPU pass on this geometry (memory budget and binding limit). */
  pass?: number;
  dims: Dims;
  pack: GeometryPack;
  GF: GPUBuffer;
  GI: GPUBuffer;
  tables: DftTables;
  TAB: GPUBuffer;
  id: number;
}

interface Plan {
  dispatches: Dispatch[];
  rec: Recorder;
  generation: number;
  /** The geometry whose plans it is among (0: none, e.g. the update). */
  geometry: number;
  /** The step (or pass) that last used it: a plan in use is never evicted. */
  used: number;
}

/**
 * Plans kept per patch geometry, the least recently used going first: a patch's training step needs three (the
 * kernel MLPs' forward, its micro-batch pass, their backward), validation two more, and an epoch's last, smaller
 * batch its own micro-batch plans. The cache grows with the patches (a plan is its bind groups and a few KiB of
 * uniforms, small beside the patch's geometry buffers), so no plan is rebuilt once every patch has been seen.
 */
const PLANS_PER_GEOMETRY = 12;
let geometryIds = 0;

/** The engine (see the module documentation). */
export class GinoGpu {
  /** The device, kernels and counters the engine runs on. */
  readonly rt: GpuRuntime;
  /** Where each model variable lives in the flat buffers. */
  readonly layout: ParamLayout;
  #pool: Pool;
  #W: GPUBuffer;
  #G: GPUBuffer;
  #M: GPUBuffer;
  #V: GPUBuffer;
  #LOG: GPUBuffer;
  #ELOG: GPUBuffer;
  #NORM: GPUBuffer;
  #FIT: GPUBuffer;
  #fitOf?: ArrayLike<number>;
  #geoms = new Map<GinoGeometry, GeoGpu>();
  #tables = new Map<string, { tables: DftTables; buf: GPUBuffer }>();
  #plans = new Map<string, Plan>();
  /** Counts the steps and passes that gather plans (see Plan.used). */
  #stamp = 0;
  /** The tfjs tensor data last copied to or from the flat buffers: [weights, first moments, second moments]. */
  #synced: [unknown[], unknown[], unknown[]] = [[], [], []];
  #optimizer?: GpuOptimizer;
  #staging = new Float32Array(0);
  /**
   * Steps taken since the training log was last asked for (their slots in the log, in order): whether each
   * computed a norm, and its loss if known.
   */
  #pending: PendingStep[] = [];
  /** Blocks of steps whose log copy is asked for and not yet read back, oldest first. */
  #inflight: LogRead[] = [];
  /** Fences placed in the queue by the throttle, oldest first, with the bytes uploaded before each. */
  #fences: { read: Readback; queued: number }[] = [];
  /** Steps found not applied (a non-finite loss and the steps queued after it) since the flag was last reset. */
  #skipped = 0;
  /** Steps read from the log and not yet handed out by readLosses. */
  #read: { loss: number; norm: number }[] = [];
  /** Validation batches in the validation log (slots used), their slot size, and those already read back. */
  #evalSlots = 0;
  #evalStride = 1;
  #evalRead: number[][] = [];
  /** The flat gradient holds zeros (Adam zeroes it as it reads it). */
  #gradsZero = true;
  /** The flat weights and moments are newer than the tfjs variables (see sync). */
  #ahead = false;
  /** Bytes uploaded for work queued since the GPU was last known to be idle (or past the oldest fence). */
  #queued = 0;

  /**
   * When set, single-process training steps time every dispatch with GPU timestamps (one compute pass each,
   * where the adapter offers `timestamp-query`; each step then waits for its timestamps) and append its label,
   * time and cost (FLOPs and bytes from its shape) here.
   */
  profile?: ProfiledDispatch[];

  /** Rows per invocation of the row products: 4, or 8 with `GINO_GW_GEMM_ROWS=8` (see `gemm.ts`). */
  readonly gemmRows: 4 | 8 = engineGemmRows();

  /** Bytes of activations one GPU pass may use (a micro-batch runs in as many passes as that needs). */
  readonly memoryBudget: number;

  /**
   * Bytes of batches uploaded for queued work after which a step or validation batch first waits for the GPU to
   * catch up (without reading anything back): the host may run ahead of the GPU, but the uploads it queues are
   * held in memory until the GPU has taken them.
   */
  readonly maxQueuedBytes: number;

  /**
   * An engine for `model` on tfjs's webgpu device. `memoryBudget`: bytes of activations per pass (default
   * {@linkcode defaultGpuMemoryBudget}); `limits` lowers the device limits (tests); `maxQueuedBytes` (default
   * 256 MiB): see {@linkcode GinoGpu.maxQueuedBytes}.
   */
  constructor(
    readonly model: Gino,
    o: { memoryBudget?: number; limits?: Partial<GpuLimits>; maxQueuedBytes?: number } = {},
  ) {
    this.rt = GpuRuntime.forEngine(o.limits);
    this.memoryBudget = o.memoryBudget ?? defaultGpuMemoryBudget();
    this.maxQueuedBytes = o.maxQueuedBytes ?? 256 * 2 ** 20;
    this.layout = paramLayout(model);
    this.#pool = new Pool(this.rt);
    const bytes = 4 * this.layout.size;
    this.#W = this.rt.buffer(bytes, "gino weights");
    this.#G = this.rt.buffer(bytes, "gino gradients");
    this.#M = this.rt.buffer(bytes, "gino first moments");
    this.#V = this.rt.buffer(bytes, "gino second moments");
    this.#LOG = this.rt.buffer(4 * (LOG_HEADER + 2 * LOG_SLOTS), "gino training log");
    this.#ELOG = this.rt.buffer(4 * EVAL_FLOATS, "gino validation log");
    this.#NORM = this.rt.buffer(4 * normParts(this.layout.size), "gino norm partials");
    this.#FIT = this.rt.buffer(16, "gino residual base");
  }

  /** What the GPU was asked to do since the last {@linkcode GpuRuntime.resetCounters}. */
  get counters(): GpuCounters {
    return this.rt.counters;
  }

  /** GPU memory held by the engine's buffers (plans' uniforms and patches' geometry included), bytes. */
  get bytes(): number {
    let b = this.#pool.bytes + 4 * 4 * this.layout.size;
    for (const p of this.#plans.values()) b += p.rec.bytes;
    for (const g of this.#geoms.values()) b += g.GF.size + g.GI.size;
    for (const t of this.#tables.values()) b += t.buf.size;
    return b;
  }

  /**
   * Enqueues one training step (see the module documentation) and returns once it is submitted: nothing waits
   * for the GPU (except in data-parallel runs, whose all-reduce needs the gradient on the host). `opt.step` is
   * advanced as if the step's loss were finite; {@linkcode GinoGpu.readLosses} gives the losses and corrects it.
   */
  async trainStep(
    geom: GinoGeometry,
    x: Float32Array,
    y: Float32Array,
    batch: number,
    coreLen: number,
    micro: number,
    opt: GpuOptimizer,
    o: GpuStepOptions = {},
  ): Promise<void> {
    if (this.#pending.length >= LOG_SLOTS || (opt !== this.#optimizer && this.unreadSteps)) {
      await this.#drain();
    }
    await this.#catchUp();
    await this.rt.checked("training step", async () => {
      const t = opt.step + 1, slot = this.#pending.length;
      const world = o.world;
      const norm = o.clipNorm !== undefined || !!o.gradNorm;
      const enc = await this.#gradientPass(geom, x, y, batch, coreLen, micro, o, opt, t, slot);
      const update = this.#plan(
        `update:${norm}:${o.clipNorm !== undefined}`,
        (rec) => updatePlan(this.rt, rec, this.#flat(), this.layout.size, norm, o.clipNorm !== undefined),
      );
      if (world === undefined || world.size === 1) {
        const all = [...enc.dispatches, ...update.dispatches];
        const timed = this.profile ? this.rt.encodeTimed(enc.encoder, all) : undefined;
        if (!timed) this.rt.encode(enc.encoder, all);
        this.rt.submit(enc.encoder);
        this.#stepTaken(opt, t, norm);
        if (timed && this.profile) {
          const ms = await timed();
          all.forEach((d, i) =>
            this.profile!.push({ label: d.label, ms: ms[i], flops: d.cost?.flops, bytes: d.cost?.bytes })
          );
        }
        return;
      }
      this.rt.encode(enc.encoder, enc.dispatches);
      const read = this.#readGradients(enc.encoder, slot);
      this.rt.submit(enc.encoder);
      const r = await read();
      const loss = new Float64Array([r.loss]);
      await world.allreduceSum(r.grads, "the all-reduce of a step's gradients");
      await world.allreduceSum64(loss, "the all-reduce of a step's loss");
      this.rt.write(this.#G, 0, r.grads);
      this.rt.write(this.#LOG, 4 * (LOG_HEADER + 2 * slot), new Float32Array([loss[0]]));
      const enc2 = this.rt.device.createCommandEncoder();
      this.rt.encode(enc2, update.dispatches);
      this.rt.submit(enc2);
      this.#stepTaken(opt, t, norm, loss[0]);
    });
  }

  /**
   * The losses (and gradient norms) of the training steps taken since the last call, in order: one read-back for
   * all of them. A step whose loss is not finite was not applied, and neither were the steps after it (they were
   * already queued when its loss became known): `opt.step` is set back to the updates actually made, and the
   * engine applies updates again from the next step on.
   */
  async readLosses(): Promise<StepLosses> {
    await this.#drain();
    return this.#handOut();
  }

  /**
   * The losses of earlier steps, without waiting for the GPU to finish what is queued: asks for the log of the
   * steps taken since the last call (a copy in the queue behind them, mapped as soon as the GPU has done them) and
   * returns those of the steps asked for before (possibly none), whose copy the GPU has long done while later steps
   * stay queued. So the GPU never idles for a read, and the losses come one call late. Where a loss among them is
   * not finite, it waits for every step taken and returns all of them, as {@linkcode GinoGpu.readLosses} does
   * (the steps after a non-finite loss were not applied).
   */
  async readEarlierLosses(): Promise<StepLosses> {
    if (this.#pending.length) this.#ask();
    while (
      this.#inflight.length > 1 || (this.#inflight.length === 1 && this.#inflight[0].read === undefined)
    ) {
      if (await this.#take(this.#inflight.shift()!)) {
        await this.#drain(); // a step not applied: every later one was not either
        break;
      }
    }
    return this.#handOut();
  }

  /** Steps taken whose losses {@linkcode GinoGpu.readLosses} has not yet returned. */
  get unreadSteps(): number {
    return this.#pending.length + this.#inflight.reduce((a, b) => a + b.steps.length, 0) + this.#read.length;
  }

  #handOut(): StepLosses {
    const read = this.#read;
    this.#read = [];
    return { losses: read.map((r) => r.loss), gradNorms: read.map((r) => r.norm) };
  }

  /**
   * Brings the model's and the optimiser's tfjs variables up to date with the engine's weights and moments (and
   * `opt.step` with the updates made): call it before anything reads them (a checkpoint, a prediction through
   * tfjs, the end of a run). One read-back each of the weights and the two moments.
   */
  async sync(): Promise<void> {
    await this.#drain();
    if (!this.#ahead || !this.#optimizer) return;
    await this.#push(this.#optimizer);
    this.#ahead = false;
  }

  /**
   * The gradients of a batch's loss (no update), per variable in `model.variables` order, and the loss: the
   * engine's backward pass, for tests and inspection.
   */
  async gradients(
    geom: GinoGeometry,
    x: Float32Array,
    y: Float32Array,
    batch: number,
    coreLen: number,
    micro: number,
    o: GpuStepOptions = {},
  ): Promise<{ loss: number; grads: Float32Array[] }> {
    if (this.#pending.length >= LOG_SLOTS) await this.#drain();
    return await this.rt.checked("gradients", async () => {
      const slot = this.#pending.length;
      const enc = await this.#gradientPass(geom, x, y, batch, coreLen, micro, o, undefined, 1, slot);
      this.rt.encode(enc.encoder, enc.dispatches);
      const read = this.#readGradients(enc.encoder, slot);
      this.rt.submit(enc.encoder);
      const { loss, grads } = await read();
      return {
        loss,
        grads: this.layout.offsets.map((off, i) => grads.slice(off, off + this.layout.sizes[i])),
      };
    });
  }

  /** The model's prediction for x [batch, N, Cin]: [batch, N, Cout] (one read-back), in micro-batches. */
  forward(
    geom: GinoGeometry,
    x: Float32Array,
    batch: number,
    micro: number,
    residual?: ResidualSpec,
  ): Promise<Float32Array> {
    return this.rt.checked("forward pass", async () => {
      const g = this.#geometry(geom), d = g.dims;
      this.#upload(g, x, undefined, batch, 1, undefined, 1, { residual }, 0);
      const out = this.#pool.get("prediction", batch * d.N * d.Cout);
      const pred = this.#pool.get("pred", Math.min(micro, batch, this.passSize(geom)) * d.N * d.Cout);
      const { plans } = this.#stepPlans(g, batch, 1, micro, { residual }, "forward");
      const enc = await this.#begin(undefined);
      // one compute pass per GPU pass: its prediction is copied out before the next overwrites it
      this.rt.encode(enc, plans[0].dispatches);
      this.#units(g, batch, micro, undefined).forEach(([s0, m], i) => {
        this.rt.encode(enc, plans[i + 1].dispatches);
        this.rt.copy(enc, pred, 0, out, 4 * s0 * d.N * d.Cout, 4 * m * d.N * d.Cout);
      });
      const read = this.rt.readAfterSubmit(enc, out, 0, 4 * batch * d.N * d.Cout);
      this.rt.submit(enc);
      return new Float32Array(await read());
    });
  }

  /**
   * Enqueues the validation losses of a batch (nothing waits: they go into the batch's slot of the validation
   * log, read back by {@linkcode GinoGpu.readEvaluation}); returns the windows this process evaluated.
   */
  async evaluate(
    geom: GinoGeometry,
    x: Float32Array,
    y: Float32Array,
    batch: number,
    coreLen: number,
    micro: number,
    o: GpuStepOptions & { groups: number; tout: number },
  ): Promise<number> {
    const stride = evalStride(o.groups);
    if (this.#evalSlots && (stride !== this.#evalStride || (this.#evalSlots + 1) * stride > EVAL_FLOATS)) {
      await this.#drainEvaluation();
    }
    this.#evalStride = stride;
    await this.#catchUp();
    const slot = this.#evalSlots;
    return await this.rt.checked("validation", async () => {
      const g = this.#geometry(geom);
      this.#upload(g, x, y, batch, coreLen, undefined, 1, o, slot);
      const { plans, units } = this.#stepPlans(g, batch, coreLen, micro, o, "eval");
      const enc = await this.#begin(undefined);
      // a process with no micro-batch of this batch (data-parallel) contributes zeros
      if (!units.length) this.rt.clear(enc, this.#ELOG, 4 * slot * stride, 4 * stride);
      this.rt.encode(enc, plans.flatMap((p) => p.dispatches));
      this.rt.submit(enc);
      this.#evalSlots++;
      return units.reduce((a, [, m]) => a + m, 0);
    });
  }

  /**
   * The validation sums of the batches evaluated since the last call, in order (one read-back for all): for
   * each batch, per group (the whole output, then each target column when there are `groups` > 1), the sum over
   * this process's micro-batches of (mean loss x windows).
   */
  async readEvaluation(): Promise<number[][]> {
    await this.#drainEvaluation();
    const out = this.#evalRead;
    this.#evalRead = [];
    return out;
  }

  /**
   * Keeps the uploads of queued work under maxQueuedBytes without waiting for an empty queue: a fence (a 4-byte
   * copy whose map is asked for at once) goes into the queue every half of the limit, and past the limit the host
   * waits for the oldest fence, the work behind it staying queued.
   */
  async #catchUp(): Promise<void> {
    const last = this.#fences.at(-1)?.queued ?? 0;
    if (this.#queued - last > this.maxQueuedBytes / 2) {
      const enc = this.rt.device.createCommandEncoder();
      const read = this.rt.readback(enc, this.#LOG, 0, 4, true);
      this.rt.submit(enc);
      read.start();
      this.#fences.push({ read, queued: this.#queued });
    }
    while (this.#queued > this.maxQueuedBytes && this.#fences.length) {
      const f = this.#fences.shift()!;
      await f.read.bytes();
      this.#queued -= f.queued;
      for (const g of this.#fences) g.queued -= f.queued;
    }
  }

  /** After a read of everything queued: the queue is known empty, the fences passed. */
  async #idle(): Promise<void> {
    this.#queued = 0;
    const fences = this.#fences;
    this.#fences = [];
    for (const f of fences) await f.read.discard();
  }

  /** Asks for the log of the pending steps: a copy behind them in the queue, its map asked for at once. */
  #ask(): void {
    const steps = this.#pending;
    this.#pending = [];
    if (!steps.some((p) => p.loss === undefined || p.norm)) {
      this.#inflight.push({ steps });
      return;
    }
    const enc = this.rt.device.createCommandEncoder();
    const read = this.rt.readback(enc, this.#LOG, 0, 4 * (LOG_HEADER + 2 * steps.length));
    this.rt.submit(enc);
    read.start();
    this.#inflight.push({ steps, read });
  }

  /**
   * Reads a block's log (waiting for its copy) into the steps read; true when a loss in it is not finite (the
   * steps from there on were not applied, nor any step queued after them until the host writes the log's flag
   * back: the caller then drains everything before that).
   */
  async #take(block: LogRead): Promise<boolean> {
    const log = block.read ? new Float32Array(await block.read.bytes()) : undefined;
    let bad = this.#skipped ? 0 : -1; // after a non-finite loss not yet answered, no step was applied
    block.steps.forEach((p, i) => {
      const loss = p.loss ?? log![LOG_HEADER + 2 * i];
      this.#read.push({ loss, norm: p.norm ? log![LOG_HEADER + 2 * i + 1] : NaN });
      if (bad < 0 && !Number.isFinite(loss)) bad = i;
    });
    if (bad < 0) return false;
    this.#skipped += block.steps.length - bad;
    return true;
  }

  /** Reads the training log of every step taken (see readLosses). */
  async #drain(): Promise<void> {
    if (this.#pending.length) this.#ask();
    if (!this.#inflight.length) return;
    const blocks = this.#inflight;
    this.#inflight = [];
    for (const b of blocks) await this.#take(b);
    await this.#idle();
    if (this.#skipped) {
      // the updates stopped at a non-finite loss: the step count back to the updates made, and updates on again
      if (this.#optimizer) this.#optimizer.step -= this.#skipped;
      this.#skipped = 0;
      this.rt.write(this.#LOG, 0, new Float32Array(1));
    }
  }

  async #drainEvaluation(): Promise<void> {
    const n = this.#evalSlots, stride = this.#evalStride;
    if (!n) return;
    this.#evalSlots = 0;
    const enc = this.rt.device.createCommandEncoder();
    const read = this.rt.readAfterSubmit(enc, this.#ELOG, 0, 4 * n * stride);
    this.rt.submit(enc);
    const log = new Float32Array(await read());
    await this.#idle();
    for (let i = 0; i < n; i++) this.#evalRead.push(Array.from(log.subarray(i * stride, (i + 1) * stride)));
  }

  #stepTaken(opt: GpuOptimizer, t: number, norm: boolean, loss?: number): void {
    opt.step = t;
    this.#pending.push({ norm, loss });
    this.#gradsZero = true; // Adam zeroed the gradient
    this.#ahead = true;
  }

  /**
   * The start of a step: the batch uploaded, the plans of its forward and backward passes, and an encoder (the
   * dispatches are left to the caller to encode). The gradient is zero already (Adam zeroes it), else cleared.
   */
  async #gradientPass(
    geom: GinoGeometry,
    x: Float32Array,
    y: Float32Array,
    batch: number,
    coreLen: number,
    micro: number,
    o: GpuStepOptions,
    opt: GpuOptimizer | undefined,
    t: number,
    slot: number,
  ): Promise<{ encoder: GPUCommandEncoder; dispatches: Dispatch[] }> {
    const g = this.#geometry(geom);
    this.#upload(g, x, y, batch, coreLen, opt, t, o, slot);
    const { plans, units } = this.#stepPlans(g, batch, coreLen, micro, o, "train");
    const encoder = await this.#begin(opt);
    if (!this.#gradsZero) this.rt.clear(encoder, this.#G);
    this.#gradsZero = false;
    if (!units.length) {
      // no micro-batch of this batch on this process (data-parallel): zero kernel gradients and loss
      this.rt.clear(encoder, this.#pool.get("in.dk", g.dims.Ein * g.dims.Cin));
      this.rt.clear(encoder, this.#pool.get("out.dk", g.dims.Eout * g.dims.C));
      this.rt.clear(encoder, this.#LOG, 4 * (LOG_HEADER + 2 * slot), 8);
    }
    return { encoder, dispatches: plans.flatMap((p) => p.dispatches) };
  }

  /** Records read-backs of the flat gradient and a step's loss; the function (after submit) resolves to them. */
  #readGradients(enc: GPUCommandEncoder, slot: number): () => Promise<{ grads: Float32Array; loss: number }> {
    const readG = this.rt.readAfterSubmit(enc, this.#G, 0, 4 * this.layout.size);
    const readL = this.rt.readAfterSubmit(enc, this.#LOG, 4 * (LOG_HEADER + 2 * slot), 4);
    return async () => ({ grads: new Float32Array(await readG()), loss: new Float32Array(await readL())[0] });
  }

  /**
   * GPU memory of a micro-batch plan on `geom`: per window (all buffers that grow with the micro-batch), and the
   * largest single buffer per window (bounded by the adapter's binding limit).
   */
  memoryPerWindow(geom: GinoGeometry): GpuMemoryEstimate {
    const g = this.#geometry(geom);
    // with a residual base (its buffer included: the estimate holds for every model)
    const o: GpuStepOptions = { residual: { cols: 1, tin: 1, tout: g.dims.Cout } };
    const tally = (m: number) => {
      const sizer = new Sizer();
      const rec = new Recorder(this.rt, "sizing");
      const b = new PlanBuilder(this.#context(g, sizer, rec));
      b.micro(this.#microOptions(g, m, 0, m, g.dims.N, o, "train", true));
      return sizer.floats;
    };
    const one = tally(1), two = tally(2);
    let per = 0, largest = 0;
    for (const [k, v] of two) {
      const d = v - (one.get(k) ?? 0);
      per += d;
      largest = Math.max(largest, d);
    }
    return { perWindowBytes: 4 * per, largestPerWindowBytes: 4 * largest };
  }

  /**
   * Sizes the shared buffers for every patch a run will use, before any plan is recorded: each patch's training
   * step, validation and prediction of `batch` windows in micro-batches of `micro`. The buffers are shared by all
   * plans and a plan holds the buffers it was recorded with, so a buffer that grows for a larger patch seen later
   * would make every plan recorded before it stale. After this, the first pass over the patches records each
   * patch's plans once and nothing is recorded again (tested; `bench step --patches` counts it).
   */
  reserve(geoms: readonly GinoGeometry[], batch: number, micro: number): void {
    const need = new Sizer();
    for (const geom of geoms) {
      const g = this.#geometry(geom), d = g.dims;
      const m = Math.min(micro, batch, this.passSize(geom));
      need.get("in", PARAMS + batch * d.N * (d.Cin + d.Cout));
      need.get("prediction", batch * d.N * d.Cout);
      const b = new PlanBuilder(this.#context(g, need, new Recorder(this.rt, "sizing")));
      b.kernelForward("in");
      b.kernelForward("out");
      const o = { residual: { cols: 1, tin: 1, tout: d.Cout } } as GpuStepOptions;
      for (const mode of ["train", "eval", "forward"] as const) {
        b.micro(this.#microOptions(g, m, 0, m, d.N, o, mode, true));
      }
      b.kernelBackward("in");
      b.kernelBackward("out");
    }
    for (const [name, floats] of need.floats) this.#pool.get(name, floats);
  }

  /**
   * Windows per GPU pass on `geom`: as many as the memory budget and the adapter's largest buffer binding allow
   * (at least one). A micro-batch larger than that runs in several passes whose gradients are summed.
   */
  passSize(geom: GinoGeometry): number {
    const g = this.#geometry(geom);
    if (g.pass === undefined) {
      const est = this.memoryPerWindow(geom);
      g.pass = Math.max(
        1,
        Math.min(
          Math.floor(this.memoryBudget / Math.max(est.perWindowBytes, 1)),
          Math.floor(this.rt.limits.maxBindingBytes / Math.max(est.largestPerWindowBytes, 1)),
        ),
      );
    }
    return g.pass;
  }

  /** The (first window, windows) of each GPU pass of this process's micro-batches. */
  #units(
    g: GeoGpu,
    batch: number,
    micro: number,
    share?: { index: number; count: number },
  ): [number, number][] {
    const pass = g.pass!;
    const out: [number, number][] = [];
    for (let s0 = 0, i = 0; s0 < batch; s0 += micro, i++) {
      if (share && i % share.count !== share.index) continue;
      const end = Math.min(batch, s0 + micro);
      for (let a = s0; a < end; a += pass) out.push([a, Math.min(pass, end - a)]);
    }
    return out;
  }

  /** Frees what the engine holds for `geom` (its buffers and plans); it is rebuilt if `geom` is used again. */
  release(geom: GinoGeometry): void {
    const g = this.#geoms.get(geom);
    if (!g) return;
    for (const [key, p] of this.#plans) {
      if (p.geometry === g.id) {
        p.rec.destroy();
        this.#plans.delete(key);
      }
    }
    g.GF.destroy();
    g.GI.destroy();
    this.#geoms.delete(geom);
  }

  /** Frees the engine's GPU buffers (the tfjs variables stay). */
  dispose(): void {
    for (const p of this.#plans.values()) p.rec.destroy();
    this.#plans.clear();
    for (const g of this.#geoms.values()) {
      g.GF.destroy();
      g.GI.destroy();
    }
    this.#geoms.clear();
    for (const t of this.#tables.values()) t.buf.destroy();
    this.#tables.clear();
    this.#pool.destroy();
    for (const b of [this.#W, this.#G, this.#M, this.#V, this.#LOG, this.#ELOG, this.#NORM, this.#FIT]) {
      b.destroy();
    }
  }

  // --- internals

  #flat() {
    return {
      W: this.#W,
      G: this.#G,
      MM: this.#M,
      VV: this.#V,
      LOG: this.#LOG,
      IN: this.#pool.get("in", PARAMS),
      PART: this.#NORM,
    };
  }

  #microOptions(
    g: GeoGpu,
    m: number,
    s0: number,
    batch: number,
    core: number,
    o: GpuStepOptions & { groups?: number; tout?: number },
    mode: MicroOptions["mode"],
    first: boolean,
  ): MicroOptions {
    const r = o.residual;
    return {
      m,
      s0,
      batch,
      core,
      mode,
      first,
      eps: o.lossEps ?? 0,
      residual: r
        ? {
          mode: r.base === "fitted" ? 2 : r.base === "linear" ? 1 : 0,
          cols: r.cols,
          tin: r.tin,
          tout: r.tout,
        }
        : undefined,
      groups: o.groups ?? 1,
      tout: o.tout ?? g.dims.Cout,
    };
  }

  /**
   * The plans of a step: the kernel MLPs' forward, this process's micro-batches (their GPU passes: `units`), the
   * kernel MLPs' backward.
   */
  #stepPlans(
    g: GeoGpu,
    batch: number,
    core: number,
    micro: number,
    o: GpuStepOptions & { groups?: number; tout?: number },
    mode: MicroOptions["mode"],
  ): { plans: Plan[]; units: [number, number][] } {
    const units = this.#units(g, batch, micro, mode === "forward" ? undefined : o.share);
    this.#stamp++;
    // a buffer that grows while a later plan is built invalidates the earlier ones: build until none grows
    for (;;) {
      const gen = this.#pool.generation;
      const plans = this.#buildStepPlans(g, units, batch, core, o, mode);
      if (this.#pool.generation === gen) return { plans, units };
    }
  }

  #buildStepPlans(
    g: GeoGpu,
    units: [number, number][],
    batch: number,
    core: number,
    o: GpuStepOptions & { groups?: number; tout?: number },
    mode: MicroOptions["mode"],
  ): Plan[] {
    const plans = [this.#plan(`kernels:${g.id}`, (rec) => {
      const b = new PlanBuilder(this.#context(g, this.#pool, rec));
      b.kernelForward("in");
      b.kernelForward("out");
    }, g.id)];
    units.forEach(([s0, m], i) => {
      const mo = this.#microOptions(g, m, s0, batch, core, o, mode, i === 0);
      const key =
        `micro:${g.id}:${mode}:${mo.m}:${s0}:${batch}:${core}:${mo.eps}:${JSON.stringify(mo.residual)}:` +
        `${mo.groups}:${mo.tout}:${mo.first}`;
      plans.push(
        this.#plan(key, (rec) => new PlanBuilder(this.#context(g, this.#pool, rec)).micro(mo), g.id),
      );
    });
    if (mode === "train") {
      plans.push(this.#plan(`kernels-backward:${g.id}`, (rec) => {
        const b = new PlanBuilder(this.#context(g, this.#pool, rec));
        b.kernelBackward("in");
        b.kernelBackward("out");
      }, g.id));
    }
    return plans;
  }

  #context(g: GeoGpu, pool: BufferSource, rec: Recorder): PlanContext {
    return {
      rt: this.rt,
      pool,
      rec,
      W: this.#W,
      G: this.#G,
      IN: pool.get("in", PARAMS),
      LOG: this.#LOG,
      ELOG: this.#ELOG,
      GF: g.GF,
      GI: g.GI,
      TAB: g.TAB,
      FIT: this.#FIT,
      layout: this.layout,
      dims: g.dims,
      pack: g.pack,
      tables: g.tables,
      gemmRows: this.gemmRows,
    };
  }

  /** A cached plan, rebuilt when a buffer it uses was replaced by a larger one. */
  #plan(key: string, build: (rec: Recorder) => void, geometry = 0): Plan {
    const have = this.#plans.get(key);
    if (have && have.generation === this.#pool.generation) {
      this.#plans.delete(key); // most recently used last
      this.#plans.set(key, have);
      have.used = this.#stamp;
      return have;
    }
    have?.rec.destroy();
    this.#plans.delete(key);
    for (let tries = 0;; tries++) {
      const gen = this.#pool.generation;
      const rec = new Recorder(this.rt, key);
      build(rec);
      if (this.#pool.generation !== gen && tries < 3) continue; // a buffer grew while building: build again
      const plan = {
        dispatches: rec.finish(),
        rec,
        generation: this.#pool.generation,
        geometry,
        used: this.#stamp,
      };
      this.#plans.set(key, plan);
      if (geometry) {
        // this geometry's least recently used plans beyond the limit go, none that this step uses
        const mine = [...this.#plans].filter(([, p]) => p.geometry === geometry);
        let excess = mine.length - PLANS_PER_GEOMETRY;
        for (const [oldest, p] of mine) {
          if (excess <= 0) break;
          if (p.used === this.#stamp) continue;
          p.rec.destroy();
          this.#plans.delete(oldest);
          excess--;
        }
      }
      return plan;
    }
  }

  #geometry(geom: GinoGeometry): GeoGpu {
    let g = this.#geoms.get(geom);
    if (g) return g;
    const dims = dimsOf(this.model.config, geom);
    const pack = packGeometry(geom.host, geom.n, dims.Q);
    const GF = this.rt.buffer(pack.floats.byteLength, "gino geometry floats");
    const GI = this.rt.buffer(pack.ints.byteLength, "gino geometry indices");
    this.rt.write(GF, 0, pack.floats);
    this.rt.write(GI, 0, pack.ints);
    const tkey = geom.grid.join("x");
    let tab = this.#tables.get(tkey);
    if (!tab) {
      const tables = dftTables(geom.grid, this.model.config.fno_n_modes);
      const buf = this.rt.buffer(tables.data.byteLength, "gino DFT tables");
      this.rt.write(buf, 0, tables.data);
      tab = { tables, buf };
      this.#tables.set(tkey, tab);
    }
    g = { dims, pack, GF, GI, tables: tab.tables, TAB: tab.buf, id: ++geometryIds };
    this.#geoms.set(geom, g);
    this.passSize(geom);
    return g;
  }

  /** Writes the step's scalars, x and y into the input buffer (one upload), and the residual weights if new. */
  #upload(
    g: GeoGpu,
    x: Float32Array,
    y: Float32Array | undefined,
    batch: number,
    core: number,
    opt: GpuOptimizer | undefined,
    t: number,
    o: GpuStepOptions,
    slot: number,
  ): void {
    const d = g.dims;
    const nx = batch * d.N * d.Cin, ny = batch * d.N * d.Cout;
    if (x.length !== nx) {
      throw new Error(`x holds ${x.length} values, [${batch}, ${d.N}, ${d.Cin}] needs ${nx}`);
    }
    if (y && y.length !== ny) {
      throw new Error(`y holds ${y.length} values, [${batch}, ${d.N}, ${d.Cout}] needs ${ny}`);
    }
    const total = PARAMS + nx + ny;
    if (this.#staging.length < total) this.#staging = new Float32Array(total);
    const s = this.#staging;
    s.fill(0, 0, PARAMS);
    s[0] = 1 / (batch * core);
    if (opt) {
      s[1] = opt.beta1;
      s[2] = 1 - opt.beta1;
      s[3] = opt.beta2;
      s[4] = 1 - opt.beta2;
      s[5] = opt.eps;
      s[6] = opt.lr / (1 - Math.pow(opt.beta1, t));
      s[7] = Math.sqrt(1 - Math.pow(opt.beta2, t));
      s[8] = o.clipNorm ?? 0;
    }
    new Uint32Array(s.buffer, s.byteOffset, PARAMS)[IN_SLOT] = slot;
    s.set(x, PARAMS);
    if (y) s.set(y, PARAMS + nx);
    this.rt.write(this.#pool.get("in", total), 0, s.subarray(0, total));
    this.#queued += 4 * total;
    const fit = o.residual?.base === "fitted" ? o.residual.fit : undefined;
    if (fit && fit !== this.#fitOf) {
      const f = Float32Array.from(fit);
      if (this.#FIT.size < f.byteLength) {
        this.#FIT.destroy();
        this.#FIT = this.rt.buffer(f.byteLength, "gino residual base");
        for (const p of this.#plans.values()) p.rec.destroy();
        this.#plans.clear();
      }
      this.rt.write(this.#FIT, 0, f);
      this.#fitOf = fit;
    }
  }

  /**
   * A command encoder for a step, with the weights (and, given an optimiser, its moments) written into the flat
   * buffers where the tfjs variables changed since the engine last saw them (a new run, a resume, an import: the
   * values come from tfjs as any caller would read them).
   */
  async #begin(opt: GpuOptimizer | undefined): Promise<GPUCommandEncoder> {
    if (opt !== this.#optimizer && opt) {
      this.#synced[1] = [];
      this.#synced[2] = [];
      this.#optimizer = opt;
    }
    const groups: [tf.Variable[], GPUBuffer][] = [[this.model.variables, this.#W]];
    if (opt) groups.push([opt.m, this.#M], [opt.v, this.#V]);
    for (const [k, [tensors, flat]] of groups.entries()) {
      for (const [i, v] of tensors.entries()) {
        if (this.#synced[k][i] === v.dataId) continue;
        this.rt.write(flat, 4 * this.layout.offsets[i], await v.data() as Float32Array);
        this.#synced[k][i] = v.dataId;
      }
    }
    return this.rt.device.createCommandEncoder();
  }

  /** Reads the flat weights and moments back into the tfjs variables (one read-back each). */
  async #push(opt: GpuOptimizer): Promise<void> {
    const groups: [tf.Variable[], GPUBuffer][] = [[this.model.variables, this.#W], [opt.m, this.#M], [
      opt.v,
      this.#V,
    ]];
    const enc = this.rt.device.createCommandEncoder();
    const reads = groups.map(([, flat]) => this.rt.readback(enc, flat, 0, 4 * this.layout.size));
    this.rt.submit(enc);
    for (const [k, [tensors]] of groups.entries()) {
      const all = new Float32Array(await reads[k].bytes());
      tensors.forEach((v, i) => {
        const off = this.layout.offsets[i];
        tf.tidy(() => v.assign(tf.tensor(all.subarray(off, off + this.layout.sizes[i]), v.shape, "float32")));
        this.#synced[k][i] = v.dataId;
      });
    }
  }
}

/**
 * Bytes of activations a GPU pass may use unless told otherwise: `GINO_GW_GPU_MEMORY` (GiB), else 6 GiB on a GPU
 * (the real-size reference case at 32 windows per pass needs about 4) and 1 GiB on a software adapter (host
 * memory). WebGPU does not tell how much memory a GPU has.
 */
export function defaultGpuMemoryBudget(): number {
  const env = envVar("GINO_GW_GPU_MEMORY");
  const gib = env !== undefined && Number(env) > 0 ? Number(env) : undefined;
  if (gib) return gib * 2 ** 30;
  return (backendInfo()?.adapter?.fallback ? 1 : 6) * 2 ** 30;
}

/**
 * The engine for `model` when the current backend is `webgpu` (undefined otherwise): on webgpu, training,
 * validation and prediction run on it.
 */
export function gpuEngineFor(model: Gino): GinoGpu | undefined {
  if (!gpuEngineRuns()) return undefined;
  return new GinoGpu(model);
}

/** Whether {@linkcode gpuEngineFor} gives an engine on the current backend. */
export function gpuEngineRuns(): boolean {
  return tf.getBackend() === "webgpu";
}

/** An environment variable, or undefined when unset or not readable (no --allow-env). */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}
