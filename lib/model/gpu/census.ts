/**
 * The dispatches of a training step listed without a GPU: the engine's plans recorded into a list instead of a
 * device, each with its kernel, uniforms, workgroups and cost (FLOPs and bytes from its shape). `bench gemm`
 * takes the shapes of the matrix products from it, and the tests check every product the engine runs.
 *
 * @module
 */

import type { Gino, GinoGeometry } from "../gino.ts";
import type { DispatchCost, GpuRuntime, Kernel, KernelSpec, Recorder } from "./runtime.ts";
import { dftTables, dimsOf, packGeometry, paramLayout } from "./layout.ts";
import { PlanBuilder, updatePlan } from "./plan.ts";
import type { MicroOptions } from "./plan.ts";

/** One dispatch of a plan: its kernel, uniform values, workgroups, label and cost. */
export interface ListedDispatch {
  /** The kernel's source description. */
  spec: KernelSpec;
  /** Its uniforms by name. */
  values: Record<string, number>;
  /** Workgroups. */
  groups: number;
  /** What it computes. */
  label: string;
  /** FLOPs and bytes. */
  cost?: DispatchCost;
}

/**
 * The dispatches of one training step of `model` on `geom` with `m` windows in one pass (the kernel MLPs'
 * forward, the micro-batch's forward, loss and backward, the kernel MLPs' backward, the update with clipping),
 * in the order the engine runs them; with `residual`, a model that predicts the change from a fitted base.
 */
export function stepDispatches(
  model: Gino,
  geom: GinoGeometry,
  m: number,
  o: { residual?: boolean; gemmRows?: 4 | 8 } = {},
): ListedDispatch[] {
  const list: ListedDispatch[] = [];
  const rt = {
    kernel: (spec: KernelSpec): Kernel => ({ spec, pipeline: undefined as unknown as GPUComputePipeline }),
  } as unknown as GpuRuntime;
  const rec = {
    add(
      kernel: Kernel,
      work: { threads?: number; groups?: number },
      values: Record<string, number>,
      _buffers: unknown,
      label: string,
      cost?: DispatchCost,
    ) {
      const groups = work.groups ?? Math.ceil((work.threads ?? 0) / kernel.spec.workgroup);
      if (groups > 0) list.push({ spec: kernel.spec, values, groups, label, cost });
    },
  } as unknown as Recorder;
  const none = {} as GPUBuffer;
  const dims = dimsOf(model.config, geom);
  const layout = paramLayout(model);
  const b = new PlanBuilder({
    rt,
    pool: { get: () => none },
    rec,
    W: none,
    G: none,
    IN: none,
    LOG: none,
    ELOG: none,
    GF: none,
    GI: none,
    TAB: none,
    FIT: none,
    layout,
    dims,
    pack: packGeometry(geom.host, geom.n, dims.Q),
    tables: dftTables(geom.grid, model.config.fno_n_modes),
    gemmRows: o.gemmRows,
  });
  const micro: MicroOptions = {
    m,
    s0: 0,
    batch: m,
    core: dims.N,
    mode: "train",
    first: true,
    eps: 0,
    groups: 1,
    tout: dims.Cout,
    residual: o.residual ? { mode: 2, cols: 1, tin: dims.Cin, tout: dims.Cout } : undefined,
  };
  b.kernelForward("in");
  b.kernelForward("out");
  b.micro(micro);
  b.kernelBackward("in");
  b.kernelBackward("out");
  updatePlan(
    rt,
    rec,
    { W: none, G: none, MM: none, VV: none, LOG: none, IN: none, PART: none },
    layout.size,
    true,
    true,
  );
  return list;
}
