/**
 * The WebGPU runtime of the GPU training engine: its own device (on the adapter tfjs's webgpu backend uses; the
 * engine calls nothing inside tfjs), WGSL kernels compiled once into pipelines, buffers, and recorded
 * dispatches that are encoded into one compute pass of one command buffer per step (pipelines and bind groups are
 * built once per plan: the WebGPU analogue of a CUDA graph). Every dispatch, submission, upload and read-back is
 * counted ({@linkcode GpuCounters}), so the cost of a step is visible on any adapter, a software one included.
 *
 * A dispatch whose workgroup count exceeds the adapter's `maxComputeWorkgroupsPerDimension` is spread over X and Y
 * (and Z); kernels recover their linear workgroup index from `num_workgroups` and skip what lies beyond their work.
 *
 * @module
 */

import { backendInfo } from "../backend.ts";

/** A command the GPU device rejected, or memory it could not allocate. */
export class GpuDeviceError extends Error {}

/**
 * What the GPU was asked to do and what the host waited for, counted since the counters were last reset: every
 * call the engine makes on the device goes through the runtime and is counted here.
 */
export interface GpuCounters {
  /** Compute dispatches (kernel launches). */
  dispatches: number;
  /** Command buffers submitted to the queue. */
  submits: number;
  /**
   * Writes from the host to GPU buffers (every `queue.writeBuffer`: a step's batch and scalars, and the
   * uniforms, geometry, DFT tables and residual weights written when a plan or a patch is first set up).
   */
  uploads: number;
  /** Reads of GPU buffers back to the host (each a map of a staging buffer). */
  readbacks: number;
  /** Buffer-to-buffer copies and clears recorded, the copies into read-back staging buffers included. */
  copies: number;
  /** Host waits on the GPU: buffer maps (read-backs) and `onSubmittedWorkDone`. */
  waits: number;
  /**
   * Of the waits, those that need every submitted command buffer to finish (the GPU then idles until the host
   * submits again): a map of a copy in the newest submission, and every `onSubmittedWorkDone`.
   */
  idleWaits: number;
  /** GPU buffers created (staging and query buffers included). */
  buffers: number;
  /** Bind groups created. */
  bindGroups: number;
  /** Compute pipelines created (each kernel source once). */
  pipelines: number;
  /** Plans recorded (lists of dispatches with their bind groups; the engine's cache keeps them). */
  plans: number;
}

/** Counters all zero. */
export function zeroCounters(): GpuCounters {
  return {
    dispatches: 0,
    submits: 0,
    uploads: 0,
    readbacks: 0,
    copies: 0,
    waits: 0,
    idleWaits: 0,
    buffers: 0,
    bindGroups: 0,
    pipelines: 0,
    plans: 0,
  };
}

/** What was counted between `before` and `now`, per one of `n` steps. */
export function countsPer(now: GpuCounters, before: GpuCounters, n: number): GpuCounters {
  const out = zeroCounters();
  for (const k of Object.keys(out) as (keyof GpuCounters)[]) out[k] = (now[k] - before[k]) / n;
  return out;
}

/** Counters per step in words. */
export function formatCounters(c: GpuCounters): string {
  const f = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(3));
  return `${f(c.dispatches)} dispatches, ${f(c.submits)} submissions, ${f(c.uploads)} buffer writes, ` +
    `${f(c.readbacks)} read-backs, ${f(c.copies)} copies/clears, ${f(c.waits)} waits (${f(c.idleWaits)} ` +
    `emptying the queue); created: ${f(c.plans)} plans, ${f(c.bindGroups)} bind groups, ${f(c.pipelines)} ` +
    `pipelines, ${f(c.buffers)} buffers`;
}

/** Host milliseconds spent in calls that may run or wait for GPU work (a software adapter runs work on submit). */
export interface GpuHostTimes {
  /** In `queue.submit`. */
  submitMs: number;
  /** Waiting for maps and `onSubmittedWorkDone`. */
  waitMs: number;
}

/** A binding of a kernel: its WGSL name, element type and access. */
export interface BindingSpec {
  /** WGSL variable name. */
  name: string;
  /** Storage access, or a uniform struct. */
  access: "read" | "read_write" | "uniform";
  /** Element type of a storage array (f32, i32, u32, or vec4 of f32 for loads four at a time). */
  type?: "f32" | "i32" | "u32" | "vec4<f32>";
}

/** A WGSL compute kernel: its bindings (group 0, in order), its uniform fields and its body. */
export interface KernelSpec {
  /** A name unique per source variant (the pipeline cache key). */
  key: string;
  /** Storage and uniform bindings after the uniform struct `u` (binding 0). */
  bindings: BindingSpec[];
  /** Uniform fields (all 32-bit), in struct order; a name ending in `_f` is an f32, anything else a u32. */
  uniforms: string[];
  /** Workgroup size (1-D). */
  workgroup: number;
  /** WGSL: helper declarations (workgroup arrays, functions). */
  helpers?: string;
  /**
   * WGSL statements of `main`; `wid` (linear workgroup index), `li` (local index) and `t` (linear thread index,
   * `wid * workgroup + li`) are defined.
   */
  body: string;
}

/** A compiled kernel. */
export interface Kernel {
  /** What it was compiled from. */
  spec: KernelSpec;
  /** The compute pipeline. */
  pipeline: GPUComputePipeline;
}

/** FLOPs and bytes of memory traffic of a dispatch (from its shape), for the profile's rates. */
export interface DispatchCost {
  /** Floating-point operations (a multiply-add is 2). */
  flops: number;
  /** Bytes read and written at least once (compulsory traffic). */
  bytes: number;
}

/** One recorded dispatch: pipeline, bind group and workgroup counts. */
export interface Dispatch {
  /** The kernel run. */
  kernel: Kernel;
  /** Its buffers and uniforms. */
  bindGroup: GPUBindGroup;
  /** Workgroups along X, Y, Z. */
  workgroups: [number, number, number];
  /** What it computes (for the profile). */
  label: string;
  /** Its FLOPs and bytes, where known. */
  cost?: DispatchCost;
}

/** The limits of the device the engine uses (a test may lower the dispatch limit to exercise splitting). */
export interface GpuLimits {
  /** Workgroups per dispatch dimension. */
  maxWorkgroupsPerDimension: number;
  /** Largest storage-buffer binding, bytes. */
  maxBindingBytes: number;
  /** Largest buffer, bytes. */
  maxBufferBytes: number;
  /** Uniform buffer binding offsets are multiples of this. */
  uniformAlign: number;
}

/** Storage usage of engine buffers: bound in kernels, copied to and from, cleared. */
export const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST

/** The runtime (see the module documentation). */
export class GpuRuntime {
  /** What the GPU was asked to do since the last {@linkcode GpuRuntime.resetCounters}. */
  readonly counters: GpuCounters = zeroCounters();
  /** Host time in submissions and waits since the last {@linkcode GpuRuntime.resetCounters}. */
  readonly hostTimes: GpuHostTimes = { submitMs: 0, waitMs: 0 };
  /** Submissions so far (never reset): a read-back's copy is in submission number `submitted + 1`. */
  #submitted = 0;
  /** The device's limits (or the lower ones given). */
  readonly limits: GpuLimits;
  #kernels = new Map<string, Kernel>();
  #staging = new Map<number, GPUBuffer[]>();

  /** A runtime on `device`; `overrides` lowers limits (tests). */
  constructor(
    readonly device: GPUDevice,
    overrides: Partial<GpuLimits> = {},
  ) {
    const l = device.limits;
    this.limits = {
      maxWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxBindingBytes: l.maxStorageBufferBindingSize,
      maxBufferBytes: l.maxBufferSize,
      uniformAlign: l.minUniformBufferOffsetAlignment,
      ...overrides,
    };
  }

  /** The runtime on the engine's own device (opened by `initBackend("webgpu")`, see `BackendInfo.engineDevice`). */
  static forEngine(overrides: Partial<GpuLimits> = {}): GpuRuntime {
    const device = backendInfo()?.engineDevice;
    if (!device) throw new Error("the GPU engine needs the webgpu backend: initBackend('webgpu') first");
    return new GpuRuntime(device, overrides);
  }

  /** Sets every counter to zero. */
  resetCounters(): void {
    Object.assign(this.counters, zeroCounters());
    Object.assign(this.hostTimes, { submitMs: 0, waitMs: 0 });
  }

  /** The kernel of `spec`, compiled once per key. */
  kernel(spec: KernelSpec): Kernel {
    let k = this.#kernels.get(spec.key);
    if (k) return k;
    const code = wgslOf(spec);
    const module = this.device.createShaderModule({ code, label: spec.key });
    const pipeline = this.device.createComputePipeline({
      layout: "auto",
      compute: { module, entryPoint: "main" },
      label: spec.key,
    });
    this.counters.pipelines++;
    k = { spec, pipeline };
    this.#kernels.set(spec.key, k);
    return k;
  }

  /** A new storage buffer of at least `bytes` (rounded up to 16; at least 16). */
  buffer(bytes: number, label: string, usage = STORAGE): GPUBuffer {
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (size > this.limits.maxBufferBytes) {
      throw new RangeError(
        `GPU buffer '${label}' needs ${mib(size)} MiB, more than this adapter's largest buffer ` +
          `(${mib(this.limits.maxBufferBytes)} MiB): use a smaller --micro-batch`,
      );
    }
    this.counters.buffers++;
    return this.device.createBuffer({ size, usage, label });
  }

  /** A bind group (counted). */
  bindGroup(descriptor: GPUBindGroupDescriptor): GPUBindGroup {
    this.counters.bindGroups++;
    return this.device.createBindGroup(descriptor);
  }

  /** Waits until the GPU has finished everything submitted (counted as a wait that empties the queue). */
  async idle(): Promise<void> {
    const t0 = performance.now();
    await this.device.queue.onSubmittedWorkDone();
    this.counters.waits++;
    this.counters.idleWaits++;
    this.hostTimes.waitMs += performance.now() - t0;
  }

  /** Workgroup counts for `n` workgroups, spread over X, Y and Z within the per-dimension limit. */
  workgroups(n: number): [number, number, number] {
    const max = this.limits.maxWorkgroupsPerDimension;
    if (n <= max) return [Math.max(1, n), 1, 1];
    const y = Math.ceil(n / max);
    if (y <= max) return [max, y, 1];
    const z = Math.ceil(y / max);
    if (z > max) throw new RangeError(`a dispatch of ${n} workgroups exceeds this adapter's limits`);
    return [max, max, z];
  }

  /** Records `dispatches` into one compute pass of `encoder`. */
  encode(encoder: GPUCommandEncoder, dispatches: readonly Dispatch[]): void {
    if (!dispatches.length) return;
    const pass = encoder.beginComputePass();
    for (const d of dispatches) {
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
    }
    pass.end();
    this.counters.dispatches += dispatches.length;
  }

  /**
   * Records `dispatches` one compute pass each with GPU timestamps (the adapter's `timestamp-query`), for the
   * profile; resolves to milliseconds per dispatch after `submit`. Undefined where timestamps are not offered.
   */
  encodeTimed(
    encoder: GPUCommandEncoder,
    dispatches: readonly Dispatch[],
  ): (() => Promise<number[]>) | undefined {
    if (!this.device.features.has("timestamp-query") || !dispatches.length) return undefined;
    const n = dispatches.length;
    const set = this.device.createQuerySet({ type: "timestamp", count: 2 * n });
    const resolve = this.buffer(16 * n, "timestamps", 0x200 | 0x4); // QUERY_RESOLVE | COPY_SRC
    dispatches.forEach((d, i) => {
      const pass = encoder.beginComputePass({
        timestampWrites: { querySet: set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      pass.setPipeline(d.kernel.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
      pass.end();
    });
    this.counters.dispatches += n;
    encoder.resolveQuerySet(set, 0, 2 * n, resolve, 0);
    const read = this.readAfterSubmit(encoder, resolve, 0, 16 * n);
    return async () => {
      const t = new BigUint64Array(await read());
      set.destroy();
      resolve.destroy();
      return Array.from({ length: n }, (_, i) => Number(t[2 * i + 1] - t[2 * i]) / 1e6);
    };
  }

  /** Records a copy (counted). */
  copy(
    encoder: GPUCommandEncoder,
    src: GPUBuffer,
    srcOff: number,
    dst: GPUBuffer,
    dstOff: number,
    bytes: number,
  ) {
    if (bytes <= 0) return;
    encoder.copyBufferToBuffer(src, srcOff, dst, dstOff, bytes);
    this.counters.copies++;
  }

  /** Records a clear to zero (counted with the copies). */
  clear(encoder: GPUCommandEncoder, buffer: GPUBuffer, offset = 0, bytes?: number): void {
    encoder.clearBuffer(buffer, offset, bytes);
    this.counters.copies++;
  }

  /** Writes host data into a buffer (one upload). */
  write(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.device.queue.writeBuffer(
      buffer,
      offset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
    this.counters.uploads++;
  }

  /** Submits an encoder's commands. */
  submit(encoder: GPUCommandEncoder): void {
    const t0 = performance.now();
    this.device.queue.submit([encoder.finish()]);
    this.hostTimes.submitMs += performance.now() - t0;
    this.counters.submits++;
    this.#submitted++;
  }

  /**
   * Runs `fn` (which records and submits commands and awaits their results) inside error scopes, so that a
   * command the device rejects (a validation error, or memory it cannot allocate) throws instead of silently
   * leaving results unwritten.
   */
  async checked<T>(what: string, fn: () => Promise<T>): Promise<T> {
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    let out: T | undefined, failure: unknown;
    try {
      out = await fn();
    } catch (e) {
      failure = e;
    }
    const validation = await this.device.popErrorScope();
    const memory = await this.device.popErrorScope();
    if (memory) {
      throw new GpuDeviceError(
        `${what}: the GPU ran out of memory (${memory.message}); use a smaller --micro-batch`,
      );
    }
    if (validation) throw new GpuDeviceError(`${what}: the GPU rejected a command: ${validation.message}`);
    if (failure !== undefined) throw failure;
    return out as T;
  }

  /**
   * Records a copy of `bytes` of `buffer` into a staging buffer; the returned function (call it after `submit`)
   * maps it and resolves to the bytes (one read-back).
   */
  readAfterSubmit(
    encoder: GPUCommandEncoder,
    buffer: GPUBuffer,
    offset: number,
    bytes: number,
  ): () => Promise<ArrayBuffer> {
    const r = this.readback(encoder, buffer, offset, bytes);
    return () => r.bytes();
  }

  /**
   * Records a copy of `bytes` of `buffer` into a staging buffer, to be read after the encoder is submitted:
   * {@linkcode Readback.start} asks for the map at once (it completes when the GPU has done the copy's
   * submission, whatever is queued after it), {@linkcode Readback.bytes} waits for it. A `fence` is only
   * waited for (counted as a wait, not a read-back).
   */
  readback(
    encoder: GPUCommandEncoder,
    buffer: GPUBuffer,
    offset: number,
    bytes: number,
    fence = false,
  ): Readback {
    // staging buffers in power-of-two sizes (at least 4 KiB; 16-byte multiples past 1 MiB), so reads of
    // slightly different sizes share them
    const size = bytes > 2 ** 20
      ? Math.ceil(bytes / 16) * 16
      : Math.max(4096, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
    const pool = this.#staging.get(size) ?? [];
    this.#staging.set(size, pool);
    const staging = pool.pop() ?? this.buffer(size, "read-back staging", 0x1 | 0x8); // MAP_READ | COPY_DST
    this.copy(encoder, buffer, offset, staging, 0, Math.ceil(bytes / 4) * 4);
    return new Readback(this, staging, bytes, this.#submitted + 1, () => pool.push(staging), fence);
  }

  /** Submissions so far (never reset). */
  get submitted(): number {
    return this.#submitted;
  }
}

/** A read-back recorded by {@linkcode GpuRuntime.readback} (see there). */
export class Readback {
  #map?: Promise<void>;

  constructor(
    readonly rt: GpuRuntime,
    readonly staging: GPUBuffer,
    readonly size: number,
    /** The submission that holds the copy. */
    readonly submission: number,
    readonly release: () => void,
    /** Only waited for (not a read-back of data). */
    readonly fence = false,
  ) {}

  /** Asks for the map now (after the copy's submission); nothing waits. */
  start(): void {
    this.#map ??= this.staging.mapAsync(0x1);
  }

  /** Lets the staging buffer go unread (after the GPU is known to be past the copy). */
  async discard(): Promise<void> {
    if (this.#map) {
      await this.#map;
      this.staging.unmap();
    }
    this.release();
  }

  /** True when later work has been submitted after the copy: waiting for it leaves that work queued. */
  get overtaken(): boolean {
    return this.rt.submitted > this.submission;
  }

  /**
   * The bytes, once the GPU has done the copy's submission (one read-back and one wait, counted; a wait with
   * nothing submitted after the copy empties the queue, and is counted so).
   */
  async bytes(): Promise<ArrayBuffer> {
    const t0 = performance.now(), c = this.rt.counters;
    if (!this.overtaken) c.idleWaits++;
    this.start();
    await this.#map;
    const out = this.staging.getMappedRange(0, this.size).slice(0);
    this.staging.unmap();
    this.release();
    if (!this.fence) c.readbacks++;
    c.waits++;
    this.rt.hostTimes.waitMs += performance.now() - t0;
    return out;
  }
}

/** A dispatch not yet finished: its bind group is made when the recorder finishes. */
interface Pending {
  kernel: Kernel;
  groups: number;
  values: number[];
  floats: boolean[];
  buffers: Record<string, GPUBufferBinding | GPUBuffer>;
  label: string;
  cost?: DispatchCost;
}

/**
 * Records the dispatches of a plan: each with its uniform values (one aligned slot each in one uniform buffer,
 * written once) and its buffers bound by name; {@linkcode Recorder.finish} makes the bind groups.
 */
export class Recorder {
  #pending: Pending[] = [];
  #uniforms?: GPUBuffer;

  constructor(readonly rt: GpuRuntime, readonly label: string) {}

  /** Adds a dispatch of `kernel` over `threads` invocations (or `groups` workgroups). */
  add(
    kernel: Kernel,
    work: { threads?: number; groups?: number },
    values: Record<string, number>,
    buffers: Record<string, GPUBufferBinding | GPUBuffer>,
    label: string,
    cost?: DispatchCost,
  ): void {
    const s = kernel.spec;
    for (const k of Object.keys(values)) {
      if (!s.uniforms.includes(k)) throw new Error(`kernel ${s.key}: no uniform '${k}'`);
    }
    for (const [k, v] of Object.entries(values)) {
      if (!Number.isFinite(v)) throw new Error(`kernel ${s.key}: uniform '${k}' is ${v}`);
      if (!k.endsWith("_f") && (v < 0 || v > 0xffffffff || !Number.isInteger(v))) {
        throw new RangeError(`kernel ${s.key}: uniform '${k}' = ${v} is not a 32-bit unsigned integer`);
      }
    }
    for (const b of s.bindings) {
      if (!buffers[b.name]) throw new Error(`kernel ${s.key}: no buffer for binding '${b.name}'`);
    }
    const groups = work.groups ?? Math.ceil((work.threads ?? 0) / s.workgroup);
    if (groups === 0) return; // nothing to do (e.g. a GNO without edges)
    this.#pending.push({
      kernel,
      groups,
      values: s.uniforms.map((n) => values[n] ?? 0),
      floats: s.uniforms.map((n) => n.endsWith("_f")),
      buffers,
      label,
      cost,
    });
  }

  /** Dispatches recorded. */
  get size(): number {
    return this.#pending.length;
  }

  /** Writes the uniforms and makes the bind groups. */
  finish(): Dispatch[] {
    const rt = this.rt, align = rt.limits.uniformAlign;
    const slot = (n: number) => Math.ceil(Math.max(16, 4 * n) / 16) * 16;
    let at = 0;
    const offsets = this.#pending.map((p) => {
      const o = at;
      at += Math.ceil(slot(p.values.length) / align) * align;
      return o;
    });
    const bytes = Math.max(at, 16);
    this.#uniforms = rt.buffer(bytes, `${this.label} uniforms`, 0x40 | 0x8); // UNIFORM | COPY_DST
    rt.counters.plans++;
    const host = new ArrayBuffer(bytes);
    const u32 = new Uint32Array(host), f32 = new Float32Array(host);
    this.#pending.forEach((p, i) => {
      p.values.forEach((v, j) => {
        if (p.floats[j]) f32[offsets[i] / 4 + j] = v;
        else u32[offsets[i] / 4 + j] = v;
      });
    });
    rt.write(this.#uniforms, 0, new Uint8Array(host));
    return this.#pending.map((p, i) => {
      const entries: GPUBindGroupEntry[] = [{
        binding: 0,
        resource: { buffer: this.#uniforms!, offset: offsets[i], size: slot(p.values.length) },
      }];
      p.kernel.spec.bindings.forEach((b, j) => {
        const r = p.buffers[b.name];
        entries.push({ binding: j + 1, resource: r instanceof GPUBuffer ? { buffer: r } : r });
      });
      const bindGroup = rt.bindGroup({
        layout: p.kernel.pipeline.getBindGroupLayout(0),
        entries,
        label: p.label,
      });
      return {
        kernel: p.kernel,
        bindGroup,
        workgroups: rt.workgroups(p.groups),
        label: p.label,
        cost: p.cost,
      };
    });
  }

  /** Bytes of its uniform buffer (0 before finish). */
  get bytes(): number {
    return this.#uniforms?.size ?? 0;
  }

  /** Frees the uniform buffer. */
  destroy(): void {
    this.#uniforms?.destroy();
  }
}

/** The WGSL source of a kernel spec. */
export function wgslOf(s: KernelSpec): string {
  const fields = s.uniforms.length ? s.uniforms : ["unused"];
  const struct = `struct U {\n${
    fields.map((f) => `  ${f} : ${f.endsWith("_f") ? "f32" : "u32"},`).join("\n")
  }\n}`;
  const binds = [
    "@group(0) @binding(0) var<uniform> u : U;",
    ...s.bindings.map((b, i) =>
      `@group(0) @binding(${i + 1}) var<storage, ${b.access}> ${b.name} : array<${b.type ?? "f32"}>;`
    ),
  ];
  return `${struct}
${binds.join("\n")}
${s.helpers ?? ""}
@compute @workgroup_size(${s.workgroup})
fn main(@builtin(workgroup_id) wg : vec3<u32>, @builtin(num_workgroups) nw : vec3<u32>,
        @builtin(local_invocation_index) li : u32) {
  let wid = wg.x + nw.x * (wg.y + nw.y * wg.z);
  let t = wid * ${s.workgroup}u + li;
  ${s.body}
}
`;
}

const mib = (b: number) => (b / 2 ** 20).toFixed(0);
