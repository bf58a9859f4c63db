/**
 * The GINO's forward and backward passes as fixed lists of dispatches ("plans"), recorded once per patch geometry
 * and micro-batch and replayed every step. Three kinds:
 *
 * - the kernel MLPs of both GNOs (they depend on the weights and the geometry only, not on the windows), forward
 *   once per step, backward once per step on the kernel gradients accumulated over the micro-batches;
 * - one micro-batch: a chain of operations (input-GNO reduction, lifting, FNO layers, output-GNO reduction,
 *   projection plus the residual base), each with its forward and its backward recording, run forward, then the
 *   loss, and for training the chain backward, every weight gradient accumulated into one flat gradient buffer;
 * - the update: gradient norm (when clipping) and Adam over the flat buffers.
 *
 * Activations are channels last (`[windows, rows, channels]`), so no pass transposes anything.
 *
 * @module
 */

import type { GpuRuntime, Kernel, KernelSpec, Recorder } from "./runtime.ts";
import {
  adamKernel,
  dftKernel,
  edgeGradFKernel,
  edgeGradKKernel,
  edgeReduceKernel,
  gatherAddKernel,
  LOG_HEADER,
  lossKernel,
  MIX_FORWARD,
  MIX_GRAD_W,
  MIX_GRAD_X,
  NORM,
  RESIDUAL_BASE,
  SEGMENT_ROWS,
  SQUARES,
  sumKernel,
} from "./kernels.ts";
import {
  gemmCost,
  rowGemmGroups,
  rowGemmKernel,
  rowsFor,
  SPLIT_SUM,
  weightGradKernel,
  weightGradPlan,
} from "./gemm.ts";
import type { RowVariant } from "./gemm.ts";
import type { DftTables, Dims, GeometryPack, ParamLayout } from "./layout.ts";

/** Floats at the start of the input buffer for per-step scalars (loss scale, Adam's hyper-parameters). */
export const PARAMS = 64;

/** Where buffers come from: a pool of named buffers, or (sizing) a tally of what they would need. */
export interface BufferSource {
  get(name: string, floats: number): GPUBuffer;
}

/** The buffers and layouts a plan refers to. */
export interface PlanContext {
  rt: GpuRuntime;
  pool: BufferSource;
  rec: Recorder;
  /** Flat parameters, gradients; the input buffer (per-step scalars, x, y). */
  W: GPUBuffer;
  G: GPUBuffer;
  IN: GPUBuffer;
  /** The training log (a loss and a gradient norm per step) and the validation log (loss sums per batch). */
  LOG: GPUBuffer;
  ELOG: GPUBuffer;
  /** The geometry's floats and indices, the DFT tables, the residual-base weights. */
  GF: GPUBuffer;
  GI: GPUBuffer;
  TAB: GPUBuffer;
  FIT: GPUBuffer;
  layout: ParamLayout;
  dims: Dims;
  pack: GeometryPack;
  tables: DftTables;
  /** Rows per invocation of the row products (4 unless 8 is chosen: see `engineGemmRows`). */
  gemmRows?: 4 | 8;
}

/** A matrix in a buffer: row-major `[rows, cols]` from element `off`. */
interface Mat {
  buf: GPUBuffer;
  off: number;
  rows: number;
  cols: number;
}

/** What a micro-batch plan computes after its forward pass. */
export interface MicroOptions {
  /** Windows in this micro-batch, the first one's index in the batch, and the batch size. */
  m: number;
  s0: number;
  batch: number;
  /** Core points (the loss is taken over them). */
  core: number;
  /** "train": loss and backward; "eval": loss groups into the validation log; "forward": prediction only. */
  mode: "train" | "eval" | "forward";
  /** The first micro-batch (GPU pass) of this process in the step: it writes the sums the others add to. */
  first: boolean;
  /** Loss denominator epsilon. */
  eps: number;
  /** Residual base: 0 last, 1 linear, 2 fitted; undefined for none. */
  residual?: { mode: number; cols: number; tin: number; tout: number };
  /** Column groups of the evaluation loss (target columns when more than one) and their steps. */
  groups: number;
  tout: number;
}

const MLP = (g: string, i: number) => `${g}_gno.integral_transform.channel_mlp.fcs.${i}`;

/** A buffer (from element `off`) as a row-major matrix. */
const mat = (buf: GPUBuffer, rows: number, cols: number, off = 0): Mat => ({ buf, off, rows, cols });

/** Builds plans into a recorder (see the module documentation). */
export class PlanBuilder {
  constructor(readonly c: PlanContext) {}

  /** The weight `name` [rows, cols] in the flat parameters. */
  #weight(name: string, rows: number, cols: number): Mat {
    return { buf: this.c.W, off: this.c.layout.at(name), rows, cols };
  }

  /** The outer and inner sizes of the DFT stages along z, y and x for m windows. */
  #stages(m: number) {
    const [g1, g2] = this.c.dims.grid, [, my, mz] = this.c.dims.modes, C = this.c.dims.C;
    return {
      stZ: { outer: m * g1 * g2, inner: C },
      stY: { outer: m * g1, inner: mz * C },
      stX: { outer: m, inner: my * mz * C },
    };
  }

  #k(spec: KernelSpec): Kernel {
    return this.c.rt.kernel(spec);
  }

  #buf(name: string, floats: number): GPUBuffer {
    return this.c.pool.get(name, floats);
  }

  /** `C = epilogue(A op(B))`: a row product (see `gemm.ts`); C is given. */
  gemm(
    o: {
      a: Mat;
      b: Mat;
      bT?: boolean;
      c: GPUBuffer;
      cOff?: number;
      bias?: number;
      add?: GPUBuffer;
      /** A mode buffer whose inverse DFT along z (table at `tOff`) is added (see `gemm.ts`). */
      spec?: { re: GPUBuffer; im: GPUBuffer; tOff: number };
      gelu?: GPUBuffer;
      muld?: GPUBuffer;
      accum?: boolean;
    },
    label: string,
  ): void {
    const R = o.a.rows, K = o.a.cols;
    const [K2, N] = o.bT ? [o.b.cols, o.b.rows] : [o.b.rows, o.b.cols];
    if (K !== K2) throw new Error(`${label}: inner sizes ${K} and ${K2} differ`);
    if (R === 0) return;
    const rows = rowsFor(this.c.gemmRows ?? 4, !!o.spec, this.c.dims.grid[2]);
    const { groups, tn, tilesN } = rowGemmGroups(R, N, rows);
    const e = {
      bias: o.bias !== undefined,
      add: !!o.add,
      spec: !!o.spec,
      gelu: !!o.gelu,
      muld: !!o.muld,
      accum: !!o.accum,
    };
    const v: RowVariant = { tn, bT: !!o.bT, vecA: K % 4 === 0 && o.a.off % 4 === 0, rows, ...e };
    const buffers: Record<string, GPUBuffer> = { A: o.a.buf, B: o.b.buf, C: o.c };
    if (o.bias !== undefined) buffers.BIAS = this.c.W;
    if (o.add) buffers.ADD = o.add;
    if (o.spec) Object.assign(buffers, { SR: o.spec.re, SI: o.spec.im, TAB: this.c.TAB });
    if (o.muld) buffers.DM = o.muld;
    if (o.gelu) buffers.DOUT = o.gelu;
    this.c.rec.add(
      this.#k(rowGemmKernel(v)),
      { groups },
      {
        R,
        N,
        K,
        tilesN,
        aOff: o.a.off,
        bOff: o.b.off,
        cOff: o.cOff ?? 0,
        biasOff: o.bias ?? 0,
        ...(o.spec ? { g3: this.c.dims.grid[2], mz: this.c.dims.modes[2], tOff: o.spec.tOff } : {}),
      },
      buffers,
      label,
      gemmCost(R, N, K, e, { g3: this.c.dims.grid[2], mz: this.c.dims.modes[2] }),
    );
  }

  /**
   * Adds `x^T dy` to the gradient at `gOff` and, with `bias`, the column sums of dy right after it (a weight's
   * gradient and its bias's). The contraction runs over all rows (windows x nodes or edges): split into chunks
   * whose partial products are summed in a fixed order (see `gemm.ts`).
   */
  weightGrad(x: Mat, dy: Mat, gOff: number, bias: boolean, label: string): void {
    const R = x.rows;
    if (R === 0) return;
    if (dy.rows !== R) throw new Error(`${label}: ${R} and ${dy.rows} rows`);
    const M = x.cols, N = dy.cols, rowsP = M + (bias ? 1 : 0);
    const sp = weightGradPlan(R, M, N, bias);
    const scratch = this.#buf("splitk", sp.partials * rowsP * N);
    this.c.rec.add(
      this.#k(weightGradKernel(sp.v)),
      { groups: sp.tilesM * sp.tilesN * sp.splits },
      {
        R,
        M,
        N,
        tilesM: sp.tilesM,
        tilesN: sp.tilesN,
        chunk: sp.chunk,
        xOff: x.off,
        dOff: dy.off,
        rowsP,
      },
      { X: x.buf, DY: dy.buf, P: scratch },
      `${label} (partial products)`,
      { flops: 2 * R * M * N + (bias ? R * N : 0), bytes: 4 * (R * (M + N) + sp.partials * rowsP * N) },
    );
    this.c.rec.add(
      this.#k(SPLIT_SUM),
      { groups: Math.ceil((rowsP * N) / 16) },
      { n: rowsP * N, splits: sp.partials, oOff: gOff },
      { P: scratch, OUT: this.c.G },
      `${label} (sum)`,
      { flops: sp.partials * rowsP * N, bytes: 4 * (sp.partials + 2) * rowsP * N },
    );
  }

  /** One truncated-DFT stage: `Y[o, p, i] = sum_q T[p, q] X[o, q, i]` (table at `tOff`). */
  dft(
    x: [GPUBuffer, GPUBuffer?],
    y: [GPUBuffer, GPUBuffer?],
    tOff: number,
    s: { outer: number; P: number; Q: number; inner: number },
    label: string,
  ): void {
    const ci = x[1] !== undefined, co = y[1] !== undefined;
    const buffers: Record<string, GPUBuffer> = { TAB: this.c.TAB, XR: x[0], YR: y[0] };
    if (ci) buffers.XI = x[1]!;
    if (co) buffers.YI = y[1]!;
    this.c.rec.add(
      this.#k(dftKernel(ci, co, s.P)),
      { threads: s.outer * s.inner },
      { outer: s.outer, Q: s.Q, inner: s.inner, tOff, xOff: 0 },
      buffers,
      label,
      {
        flops: s.outer * s.P * s.inner * s.Q * (ci ? 8 : 4),
        bytes: 4 * (s.outer * s.inner * (s.Q * (ci ? 2 : 1) + s.P * (co ? 2 : 1)) + 2 * s.P * s.Q),
      },
    );
  }

  /**
   * The last (real-output) DFT stage along z, from the complex mode buffer `x` with table `tOff`, as the addend
   * of the matrix product that consumes it: in that product's epilogue where the grid allows (g3 a multiple of 4),
   * else as a stage of its own into a full-grid buffer.
   */
  #zStage(
    x: [GPUBuffer, GPUBuffer],
    tOff: number,
    m: number,
    label: string,
  ): { spec?: { re: GPUBuffer; im: GPUBuffer; tOff: number }; add?: GPUBuffer } {
    const [, , g3] = this.c.dims.grid, [, , mz] = this.c.dims.modes;
    if (g3 % 4 === 0) return { spec: { re: x[0], im: x[1], tOff } };
    const full = this.#buf("s.spec", m * this.c.dims.Q * this.c.dims.C);
    this.dft(x, [full], tOff, { ...this.#stages(m).stZ, P: g3, Q: mz }, label);
    return { add: full };
  }

  /** The kernel MLP of GNO `g` on its edges (once per step): k = `${g}.h{L-1}`. */
  kernelForward(g: "in" | "out"): void {
    const { dims: d, layout, pack } = this.c;
    const w = g === "in" ? d.wIn : d.wOut, L = w.length - 1, E = g === "in" ? d.Ein : d.Eout;
    const emb = w[0] / 2;
    const nN = g === "in" ? d.N : d.outUsed, nQ = g === "in" ? d.inUsed : d.N;
    const embN: Mat = {
      buf: this.c.GF,
      off: g === "in" ? pack.f.inEmbP : pack.f.outEmbL,
      rows: nN,
      cols: emb,
    };
    const embQ: Mat = {
      buf: this.c.GF,
      off: g === "in" ? pack.f.inEmbL : pack.f.outEmbP,
      rows: nQ,
      cols: emb,
    };
    const w0 = layout.at(`${MLP(g, 0)}.weight`);
    const an = this.#buf(`${g}.an`, nN * w[1]), aq = this.#buf(`${g}.aq`, nQ * w[1]);
    this.gemm(
      { a: embN, b: { buf: this.c.W, off: w0, rows: emb, cols: w[1] }, c: an },
      `${g} GNO kernel 0 (neighbours)`,
    );
    this.gemm(
      { a: embQ, b: { buf: this.c.W, off: w0 + emb * w[1], rows: emb, cols: w[1] }, c: aq },
      `${g} GNO kernel 0 (queries)`,
    );
    const h0 = this.#buf(`${g}.h0`, E * w[1]);
    const buffers: Record<string, GPUBuffer> = { AN: an, AQ: aq, IDX: this.c.GI, BIAS: this.c.W, H: h0 };
    if (L > 1) buffers.D = this.#buf(`${g}.d0`, E * w[1]);
    this.c.rec.add(
      this.#k(gatherAddKernel(L > 1)),
      { threads: E * w[1] },
      {
        n: E * w[1],
        C: w[1],
        nbOff: g === "in" ? pack.i.inSrc : pack.i.outSrcC,
        qOff: g === "in" ? pack.i.inDstC : pack.i.outDst,
        biasOff: layout.at(`${MLP(g, 0)}.bias`),
      },
      buffers,
      `${g} GNO kernel 0 (edges)`,
      { flops: E * w[1] * (L > 1 ? 24 : 2), bytes: 4 * E * w[1] * (L > 1 ? 4 : 3) + 8 * E },
    );
    for (let i = 1; i < L; i++) {
      const last = i === L - 1;
      this.gemm(
        {
          a: { buf: this.#buf(`${g}.h${i - 1}`, E * w[i]), off: 0, rows: E, cols: w[i] },
          b: { buf: this.c.W, off: layout.at(`${MLP(g, i)}.weight`), rows: w[i], cols: w[i + 1] },
          c: this.#buf(`${g}.h${i}`, E * w[i + 1]),
          bias: layout.at(`${MLP(g, i)}.bias`),
          gelu: last ? undefined : this.#buf(`${g}.d${i}`, E * w[i + 1]),
        },
        `${g} GNO kernel ${i}`,
      );
    }
  }

  /** The kernel MLP's backward pass from the accumulated `${g}.dk` (once per step). */
  kernelBackward(g: "in" | "out"): void {
    const { dims: d, layout, pack } = this.c;
    const w = g === "in" ? d.wIn : d.wOut, L = w.length - 1, E = g === "in" ? d.Ein : d.Eout;
    if (E === 0) return;
    const emb = w[0] / 2;
    const nN = g === "in" ? d.N : d.outUsed, nQ = g === "in" ? d.inUsed : d.N;
    const maxW = Math.max(...w.slice(1));
    let cur = this.#buf(`${g}.dk`, E * w[L]);
    for (let i = L - 1; i >= 1; i--) {
      const wi = layout.at(`${MLP(g, i)}.weight`);
      this.weightGrad(
        { buf: this.#buf(`${g}.h${i - 1}`, E * w[i]), off: 0, rows: E, cols: w[i] },
        { buf: cur, off: 0, rows: E, cols: w[i + 1] },
        wi,
        true,
        `${g} GNO kernel ${i} weight gradient`,
      );
      const next = this.#buf(`${g}.dg${i % 2}`, E * maxW);
      this.gemm(
        {
          a: { buf: cur, off: 0, rows: E, cols: w[i + 1] },
          b: { buf: this.c.W, off: wi, rows: w[i], cols: w[i + 1] },
          bT: true,
          c: next,
          muld: this.#buf(`${g}.d${i - 1}`, E * w[i]),
        },
        `${g} GNO kernel ${i} input gradient`,
      );
      cur = next;
    }
    const dan = this.#buf(`${g}.dan`, nN * w[1]), daq = this.#buf(`${g}.daq`, nQ * w[1]);
    const rows = (out: GPUBuffer, n: number, rs: number, perm: number, label: string) =>
      this.c.rec.add(
        this.#k(SEGMENT_ROWS),
        { threads: n * w[1] },
        { n: n * w[1], C: w[1], rsOff: rs, permOff: perm },
        { SRC: cur, IDX: this.c.GI, OUT: out },
        label,
        { flops: E * w[1], bytes: 4 * (E * w[1] + n * w[1] + E + n) },
      );
    const p = pack.i;
    if (g === "in") {
      rows(dan, nN, p.inBySrcRs, p.inBySrcPerm, "in GNO kernel 0: gradient per point");
      rows(daq, nQ, p.inByQRs, p.inByQPerm, "in GNO kernel 0: gradient per latent node");
    } else {
      rows(dan, nN, p.outBySrcCRs, p.outBySrcPerm, "out GNO kernel 0: gradient per latent node");
      rows(daq, nQ, p.outByDstRs, p.outByDstPerm, "out GNO kernel 0: gradient per point");
    }
    const w0 = layout.at(`${MLP(g, 0)}.weight`);
    const f = pack.f;
    this.weightGrad(
      { buf: this.c.GF, off: g === "in" ? f.inEmbP : f.outEmbL, rows: nN, cols: emb },
      { buf: dan, off: 0, rows: nN, cols: w[1] },
      w0,
      false,
      `${g} GNO kernel 0 weight gradient (neighbour half)`,
    );
    this.weightGrad(
      { buf: this.c.GF, off: g === "in" ? f.inEmbL : f.outEmbP, rows: nQ, cols: emb },
      { buf: daq, off: 0, rows: nQ, cols: w[1] },
      w0 + emb * w[1],
      true,
      `${g} GNO kernel 0 weight gradient (query half, bias)`,
    );
  }

  /**
   * One micro-batch: the chain of operations forward (each saving what its backward pass needs), the loss, and
   * (training) the same chain backward, last to first: each operation adds its weights' gradients and writes the
   * gradient of its input, which the operation before it takes as its output's. Input gradients alternate between
   * two buffers.
   */
  micro(o: MicroOptions): void {
    const { dims: d } = this.c;
    const { m } = o;
    const N = d.N;
    const xOff = PARAMS + o.s0 * N * d.Cin;
    const yOff = PARAMS + o.batch * N * d.Cin + o.s0 * N * d.Cout;
    const chain = this.#chain(o, xOff);
    let act: Act = { buf: this.c.IN, off: xOff, rows: m * N, cols: d.Cin };
    const inputs: Act[] = [];
    for (const op of chain) {
      inputs.push(act);
      act = op.forward(act);
    }
    if (o.mode === "forward") return;
    const train = o.mode === "train";
    const dpred = train ? this.#buf("dpred", m * N * d.Cout) : undefined;
    this.#loss(o, act.buf, dpred, yOff);
    if (!dpred) return;
    let dy: Act = { buf: dpred, off: 0, rows: m * N, cols: d.Cout };
    for (let i = chain.length - 1; i >= 0; i--) {
      const x = inputs[i];
      const dx = i > 0 ? this.#buf(`grad${i % 2}`, x.rows * x.cols) : undefined;
      chain[i].backward(x, dy, dx);
      if (dx) dy = { buf: dx, off: 0, rows: x.rows, cols: x.cols };
    }
  }

  /** The loss per core point and its sum into the step's (or validation batch's) slot; with `dpred`, its gradient. */
  #loss(o: MicroOptions, pred: GPUBuffer, dpred: GPUBuffer | undefined, yOff: number): void {
    const d = this.c.dims, m = o.m, N = d.N, train = dpred !== undefined;
    const np = m * o.core;
    const part = this.#buf("loss.part", (1 + o.groups) * np);
    const lossBufs: Record<string, GPUBuffer> = { P: pred, IN: this.c.IN, PART: part };
    if (dpred) lossBufs.DP = dpred;
    this.c.rec.add(
      this.#k(lossKernel(train)),
      { threads: m * N },
      {
        batch: m,
        N,
        core: o.core,
        Co: d.Cout,
        yOff,
        groups: train ? 1 : o.groups,
        tout: o.tout,
        eps_f: o.eps,
      },
      lossBufs,
      "loss",
      { flops: 6 * m * N * d.Cout * (train ? 2 : 1 + (o.groups > 1 ? 1 : 0)), bytes: 4 * m * N * d.Cout * 3 },
    );
    const sums = train ? 1 : evalStride(o.groups);
    this.c.rec.add(
      this.#k(sumKernel(train, o.first)),
      { groups: 1 },
      {
        n: np,
        groups: sums,
        accOff: train ? LOG_HEADER : 0,
        stride: train ? 2 : sums,
        scale_f: train ? 1 : 1 / o.core,
      },
      { PART: part, ACC: train ? this.c.LOG : this.c.ELOG, IN: this.c.IN },
      "loss sum",
      { flops: np * sums, bytes: 4 * np * sums },
    );
  }

  /**
   * The micro-batch's chain: input GNO, lifting (2 dense layers), the FNO layers, output GNO, projection (2 dense
   * layers, the residual base added by the last).
   */
  #chain(o: MicroOptions, xOff: number): Op[] {
    const d = this.c.dims, m = o.m;
    const Q = d.Q, N = d.N, C = d.C;
    const chain: Op[] = [this.#inGno(o, xOff)];
    chain.push(this.#dense("lifting.fcs.0", "lifting 0", m * Q, d.Cin, d.Lc, { out: "l", gelu: true }));
    chain.push(this.#dense("lifting.fcs.1", "lifting 1", m * Q, d.Lc, C, { out: "f.h0" }));
    for (let l = 0; l < d.layers; l++) chain.push(this.#fnoLayer(l, m));
    chain.push(this.#outGno(o));
    chain.push(this.#dense("projection.fcs.0", "projection 0", m * N, C, d.P, { out: "p", gelu: true }));
    chain.push(
      this.#dense("projection.fcs.1", "projection 1", m * N, d.P, d.Cout, {
        out: "pred",
        base: o.residual && (() => this.#residualBase(o, xOff)),
      }),
    );
    return chain;
  }

  /** The input GNO: a[b, q] = mean over the points j near q of k(q, j) x[b, j]; backward: its kernel's gradient. */
  #inGno(o: MicroOptions, xOff: number): Op {
    const { dims: d, pack } = this.c, m = o.m, Q = d.Q, N = d.N;
    const kIn = this.#buf(`in.h${d.wIn.length - 2}`, d.Ein * d.Cin);
    return {
      forward: () => {
        const a = this.#buf("x.a", m * Q * d.Cin);
        this.c.rec.add(
          this.#k(edgeReduceKernel(true)),
          { threads: m * Q * d.Cin },
          {
            n: m * Q * d.Cin,
            S: Q,
            C: d.Cin,
            nb: N,
            fOff: xOff,
            rsOff: pack.i.inRs,
            srcOff: pack.i.inSrc,
            invOff: pack.f.inInv,
          },
          { K: kIn, F: this.c.IN, IDX: this.c.GI, OUT: a, INV: this.c.GF },
          "in GNO reduction",
          { flops: 2 * m * d.Ein * d.Cin, bytes: 4 * (d.Ein * d.Cin + m * (N + Q) * d.Cin + d.Ein) },
        );
        return { buf: a, off: 0, rows: m * Q, cols: d.Cin };
      },
      // the kernel's gradient, accumulated over the micro-batches (the kernel MLP's backward runs once per step)
      backward: (_x, dy) => {
        this.c.rec.add(
          this.#k(edgeGradKKernel(true, o.first)),
          { threads: d.Ein * d.Cin },
          {
            n: d.Ein * d.Cin,
            S: Q,
            C: d.Cin,
            nb: N,
            batch: m,
            fOff: xOff,
            srcOff: pack.i.inSrc,
            dstOff: pack.i.inDst,
            invOff: pack.f.inInv,
          },
          { DY: dy.buf, F: this.c.IN, IDX: this.c.GI, DK: this.#buf("in.dk", d.Ein * d.Cin), INV: this.c.GF },
          "in GNO reduction: kernel gradient",
          { flops: 2 * m * d.Ein * d.Cin, bytes: 4 * (2 * d.Ein * d.Cin + m * (Q + N) * d.Cin + 3 * d.Ein) },
        );
      },
    };
  }

  /**
   * A dense layer `y = x W + b` of the weight `name` ([K, N]) on `rows` rows, optionally through GELU (its
   * derivative kept with the output) or plus a base (`base` records it); backward: the weight's and bias's
   * gradients, and the input's (times the input's own GELU derivative, where it has one).
   */
  #dense(
    name: string,
    label: string,
    rows: number,
    K: number,
    N: number,
    o: { out: string; gelu?: boolean; base?: () => GPUBuffer },
  ): Op {
    const W = this.c.layout.at(`${name}.weight`);
    return {
      forward: (x) => {
        const y = this.#buf(o.out === "f.h0" || o.out === "pred" ? o.out : `${o.out}.g`, rows * N);
        const dout = o.gelu ? this.#buf(`${o.out}.d`, rows * N) : undefined;
        const add = o.base?.();
        this.gemm(
          {
            a: mat(x.buf, rows, K, x.off),
            b: this.#weight(`${name}.weight`, K, N),
            c: y,
            bias: this.c.layout.at(`${name}.bias`),
            gelu: dout,
            add,
          },
          label,
        );
        return { buf: y, off: 0, rows, cols: N, d: dout };
      },
      backward: (x, dy, dx) => {
        this.weightGrad(
          mat(x.buf, rows, K, x.off),
          mat(dy.buf, rows, N),
          W,
          true,
          `${label} weight gradient`,
        );
        if (!dx) return;
        this.gemm(
          { a: mat(dy.buf, rows, N), b: this.#weight(`${name}.weight`, K, N), bT: true, c: dx, muld: x.d },
          `${label} input gradient`,
        );
      },
    };
  }

  /** The residual base forecast of the micro-batch's windows (added to the projection's output). */
  #residualBase(o: MicroOptions, xOff: number): GPUBuffer {
    const d = this.c.dims, m = o.m, N = d.N, r = o.residual!;
    const base = this.#buf("base", m * N * d.Cout);
    this.c.rec.add(
      this.#k(RESIDUAL_BASE),
      { threads: m * N * d.Cout },
      { n: m * N * d.Cout, cols: r.cols, tin: r.tin, tout: r.tout, xOff, mode: r.mode },
      { X: this.c.IN, FIT: this.c.FIT, BASE: base },
      "residual base",
      { flops: 2 * m * N * d.Cout * r.tin, bytes: 4 * m * N * (d.Cin + d.Cout) },
    );
    return base;
  }

  /**
   * FNO layer l: `y = skip(x) + b + spectral(x)`, through GELU but in the last layer. Forward: the DFT stages
   * along z, y and x (the kept modes saved for the mixing's weight gradient), the mode mixing, the inverse stages
   * along x and y, and the skip product whose epilogue adds the bias and the inverse stage along z. Backward: the
   * skip's and bias's gradients, the adjoint stages, the mixing's weight and input gradients, the adjoints of the
   * forward stages, and the input's gradient (skip product, plus the adjoint stage along z in its epilogue, times
   * the input's GELU derivative).
   */
  #fnoLayer(l: number, m: number): Op {
    const { dims: d, layout, tables: T } = this.c;
    const [g1, g2, g3] = d.grid, [mx, my, mz] = d.modes;
    const Q = d.Q, C = d.C, last = l === d.layers - 1;
    const skip = `fno_blocks.fno_skips.${l}.weight`, conv = `fno_blocks.convs.${l}.weight.0.tensor`;
    const wv = { M: d.M, C, O: C, wr: layout.at(conv, 0), wi: layout.at(conv, 1) };
    // scratch shared by every layer, forward and backward; the kept modes are each layer's own
    const pair = (name: string, floats: number): [GPUBuffer, GPUBuffer] => [
      this.#buf(`${name}r`, floats),
      this.#buf(`${name}i`, floats),
    ];
    const sa = pair("s.a", m * g1 * g2 * mz * C), sb = pair("s.b", m * g1 * my * mz * C);
    const sy = pair("s.y", m * d.M * C), sx = pair(`s.x${l}`, m * d.M * C);
    const { stZ, stY, stX } = this.#stages(m);
    return {
      forward: (x) => {
        const h = this.#buf(`f.h${l + 1}`, m * Q * C);
        const dout = last ? undefined : this.#buf(`f.d${l + 1}`, m * Q * C);
        this.dft([x.buf], sa, T.fz, { ...stZ, P: mz, Q: g3 }, `FNO ${l} DFT z`);
        this.dft(sa, sb, T.fy, { ...stY, P: my, Q: g2 }, `FNO ${l} DFT y`);
        this.dft(sb, sx, T.fx, { ...stX, P: mx, Q: g1 }, `FNO ${l} DFT x`);
        this.c.rec.add(
          this.#k(MIX_FORWARD),
          { threads: m * d.M * C },
          { n: m * d.M * C, ...wv },
          { XR: sx[0], XI: sx[1], W: this.c.W, YR: sy[0], YI: sy[1] },
          `FNO ${l} mode mixing`,
          mixCost(m, d.M, C),
        );
        this.dft(sy, sb, T.ix, { ...stX, P: g1, Q: mx }, `FNO ${l} inverse DFT x`);
        this.dft(sb, sa, T.iy, { ...stY, P: g2, Q: my }, `FNO ${l} inverse DFT y`);
        // the inverse DFT along z in the epilogue: the full-grid spectral part is never stored
        const spectral = this.#zStage(sa, T.iz, m, `FNO ${l} inverse DFT z`);
        this.gemm(
          {
            a: mat(x.buf, m * Q, C),
            b: this.#weight(skip, C, C),
            c: h,
            bias: layout.at(`fno_blocks.convs.${l}.bias`),
            ...spectral,
            gelu: dout,
          },
          `FNO ${l} skip, bias${spectral.spec ? ", inverse DFT z" : ""}, spectral sum${last ? "" : ", GELU"}`,
        );
        return { buf: h, off: 0, rows: m * Q, cols: C, d: dout };
      },
      backward: (x, dz, dx) => {
        this.weightGrad(
          mat(x.buf, m * Q, C),
          mat(dz.buf, m * Q, C),
          layout.at(skip),
          true,
          `FNO ${l} skip and bias gradient`,
        );
        this.dft([dz.buf], sa, T.aiz, { ...stZ, P: mz, Q: g3 }, `FNO ${l} inverse DFT z, adjoint`);
        this.dft(sa, sb, T.aiy, { ...stY, P: my, Q: g2 }, `FNO ${l} inverse DFT y, adjoint`);
        this.dft(sb, sy, T.aix, { ...stX, P: mx, Q: g1 }, `FNO ${l} inverse DFT x, adjoint`);
        this.c.rec.add(
          this.#k(MIX_GRAD_W),
          { threads: d.M * C * C },
          { n: d.M * C * C, ...wv, batch: m },
          { XR: sx[0], XI: sx[1], DR: sy[0], DI: sy[1], G: this.c.G },
          `FNO ${l} mode mixing: weight gradient`,
          mixCost(m, d.M, C),
        );
        const dm = pair("s.dx", m * d.M * C);
        this.c.rec.add(
          this.#k(MIX_GRAD_X),
          { threads: m * d.M * C },
          { n: m * d.M * C, ...wv },
          { DR: sy[0], DI: sy[1], W: this.c.W, XR: dm[0], XI: dm[1] },
          `FNO ${l} mode mixing: input gradient`,
          mixCost(m, d.M, C),
        );
        this.dft(dm, sb, T.afx, { ...stX, P: g1, Q: mx }, `FNO ${l} DFT x, adjoint`);
        this.dft(sb, sa, T.afy, { ...stY, P: g2, Q: my }, `FNO ${l} DFT y, adjoint`);
        // the adjoint of the DFT along z in the epilogue
        const spectral = this.#zStage(sa, T.afz, m, `FNO ${l} DFT z, adjoint`);
        this.gemm(
          { a: mat(dz.buf, m * Q, C), b: this.#weight(skip, C, C), bT: true, c: dx!, ...spectral, muld: x.d },
          `FNO ${l} input gradient${spectral.spec ? ", DFT z adjoint" : ""}${x.d ? " (through GELU)" : ""}`,
        );
      },
    };
  }

  /**
   * The output GNO: o[b, n] = sum over the latent nodes q near n of k(n, q) h[b, q]; backward: its kernel's
   * gradient (accumulated over the micro-batches) and the latent nodes'.
   */
  #outGno(o: MicroOptions): Op {
    const { dims: d, pack } = this.c, m = o.m, Q = d.Q, N = d.N, C = d.C, p = pack.i;
    const kOut = this.#buf(`out.h${d.wOut.length - 2}`, d.Eout * C);
    const inv: Record<string, GPUBuffer> = d.outMean ? { INV: this.c.GF } : {};
    return {
      forward: (h) => {
        const out = this.#buf("o", m * N * C);
        this.c.rec.add(
          this.#k(edgeReduceKernel(d.outMean)),
          { threads: m * N * C },
          { n: m * N * C, S: N, C, nb: Q, fOff: 0, rsOff: p.outRs, srcOff: p.outSrc, invOff: pack.f.outInv },
          { K: kOut, F: h.buf, IDX: this.c.GI, OUT: out, ...inv },
          "out GNO reduction",
          { flops: 2 * m * d.Eout * C, bytes: 4 * (d.Eout * C + m * (Q + N) * C + d.Eout) },
        );
        return { buf: out, off: 0, rows: m * N, cols: C };
      },
      backward: (h, dy, dx) => {
        if (h.d) throw new Error("the output GNO's input has no GELU in the reference GINO");
        this.c.rec.add(
          this.#k(edgeGradKKernel(d.outMean, o.first)),
          { threads: d.Eout * C },
          {
            n: d.Eout * C,
            S: N,
            C,
            nb: Q,
            batch: m,
            fOff: 0,
            srcOff: p.outSrc,
            dstOff: p.outDst,
            invOff: pack.f.outInv,
          },
          { DY: dy.buf, F: h.buf, IDX: this.c.GI, DK: this.#buf("out.dk", d.Eout * C), ...inv },
          "out GNO reduction: kernel gradient",
          { flops: 2 * m * d.Eout * C, bytes: 4 * (2 * d.Eout * C + m * (Q + N) * C + 2 * d.Eout) },
        );
        this.c.rec.add(
          this.#k(edgeGradFKernel(d.outMean)),
          { threads: m * Q * C },
          {
            n: m * Q * C,
            S: N,
            C,
            nb: Q,
            rsOff: p.outBySrcRs,
            permOff: p.outBySrcPerm,
            dstOff: p.outDst,
            invOff: pack.f.outInv,
          },
          { K: kOut, DY: dy.buf, IDX: this.c.GI, DF: dx!, ...inv },
          "out GNO reduction: latent gradient",
          { flops: 2 * m * d.Eout * C, bytes: 4 * (d.Eout * C + m * (Q + N) * C + 3 * d.Eout) },
        );
      },
    };
  }
}

/** An activation of the micro-batch: `[rows, cols]` from `off` in `buf`; `d`: its GELU derivative, if a GELU made it. */
interface Act {
  buf: GPUBuffer;
  off: number;
  rows: number;
  cols: number;
  d?: GPUBuffer;
}

/**
 * One operation of a micro-batch's chain: `forward` records its dispatches from its input to its output (saving what
 * `backward` needs); `backward` records, for the same input and its output's gradient `dy`, its weights' gradients
 * (added to the flat gradient) and its input's gradient into `dx` (none for the first operation).
 */
interface Op {
  forward(x: Act): Act;
  backward(x: Act, dy: Act, dx: GPUBuffer | undefined): void;
}

/** A spectral mode mixing (or either adjoint): m windows, M modes, C channels in and out, complex. */
function mixCost(m: number, M: number, C: number) {
  return { flops: 8 * m * M * C * C, bytes: 4 * 2 * (2 * m * M * C + M * C * C) };
}

/** Floats of a validation batch's slot in the validation log: the loss, then each group's when there are several. */
export function evalStride(groups: number): number {
  return 1 + (groups > 1 ? groups : 0);
}

/**
 * The update: gradient norm (with `norm`) and Adam over the flat buffers `W`, `G`, `MM`, `VV`; the step's loss and
 * norm are in its slot of the training log `LOG`.
 */
export function updatePlan(
  rt: GpuRuntime,
  rec: Recorder,
  b: {
    W: GPUBuffer;
    G: GPUBuffer;
    MM: GPUBuffer;
    VV: GPUBuffer;
    LOG: GPUBuffer;
    IN: GPUBuffer;
    PART: GPUBuffer;
  },
  size: number,
  norm: boolean,
  clip: boolean,
): void {
  if (norm) {
    const chunk = Math.max(4096, Math.ceil(size / 1024)), parts = Math.ceil(size / chunk);
    rec.add(
      rt.kernel(SQUARES),
      { groups: parts },
      { n: size, chunk, parts },
      { X: b.G, PART: b.PART },
      "gradient norm (partial)",
      { flops: 2 * size, bytes: 4 * size },
    );
    rec.add(
      rt.kernel(NORM),
      { groups: 1 },
      { parts },
      { PART: b.PART, LOG: b.LOG, IN: b.IN },
      "gradient norm",
      {
        flops: parts,
        bytes: 4 * parts,
      },
    );
  }
  rec.add(
    rt.kernel(adamKernel(clip)),
    { threads: size },
    { n: size },
    { W: b.W, G: b.G, MM: b.MM, VV: b.VV, LOG: b.LOG, IN: b.IN },
    "Adam",
    { flops: 14 * size, bytes: 4 * 8 * size },
  );
}

/** Partial sums the norm needs (see {@linkcode updatePlan}). */
export function normParts(size: number): number {
  return Math.ceil(size / Math.max(4096, Math.ceil(size / 1024)));
}
