/**
 * The discretisation of the Henry problem (MODFLOW 6 GWF + GWT + BUY), as a state advanced one time step at a time:
 * the grid and its faces, the flow system (factorised once), the transport system, and the salt balance of a step.
 * `henry.ts` drives it and writes the output.
 *
 * @module
 */

import { BandedCholesky, BiCgStab, CsrMatrix } from "./sparse.ts";
import { HenryError, stepFailure } from "./henry_options.ts";
import type { HenryOptions } from "./henry_options.ts";

/** Cells, faces and boundaries of the grid. */
interface Grid {
  /** Cells. */
  n: number;
  /** Cell-centre elevation per cell. */
  zc: Float64Array;
  /** Face f connects cells fa[f] and fb[f] with flow conductance fc[f] and diffusive conductance fd[f]. */
  fa: number[];
  fb: number[];
  fc: number[];
  fd: number[];
  /** Mean elevation of a face's two cells. */
  faceZbar: Float64Array;
  /** 1 for cells of the sea column. */
  isSea: Uint8Array;
  /** Fresh inflow per cell (land column), m3/d, before the time variation. */
  wellBase: Float64Array;
  /** Cell volume, m3. */
  volume: number;
}

function buildGrid(o: HenryOptions): Grid {
  const { nx, ny, nz } = o;
  const n = nx * ny * nz;
  const dx = o.length / nx, dz = o.height / nz, dy = o.width;
  const cell = (lay: number, row: number, col: number) => (lay * ny + row) * nx + col;
  const zc = new Float64Array(n);
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) for (let c = 0; c < nx; c++) zc[cell(l, r, c)] = o.height - (l + 0.5) * dz;
  }
  const fa: number[] = [], fb: number[] = [], fc: number[] = [], fd: number[] = [];
  const dEff = o.porosity * o.diffc; // effective diffusion, the MF6 convention
  const addFace = (a: number, b: number, area: number, dist: number) => {
    fa.push(a);
    fb.push(b);
    fc.push((o.k * area) / dist);
    fd.push((dEff * area) / dist);
  };
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      for (let c = 0; c < nx; c++) {
        const i = cell(l, r, c);
        if (c + 1 < nx) addFace(i, cell(l, r, c + 1), dy * dz, dx);
        if (r + 1 < ny) addFace(i, cell(l, r + 1, c), dx * dz, dy);
        if (l + 1 < nz) addFace(i, cell(l + 1, r, c), dx * dy, dz);
      }
    }
  }
  const faceZbar = Float64Array.from({ length: fa.length }, (_, f) => 0.5 * (zc[fa[f]] + zc[fb[f]]));
  const isSea = new Uint8Array(n);
  const wellBase = new Float64Array(n);
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      isSea[cell(l, r, nx - 1)] = 1;
      const factor = 1 + o.inflowVariation * Math.cos((Math.PI * (r + 0.5)) / ny);
      wellBase[cell(l, r, 0)] += (o.inflow * dy * factor) / nz;
    }
  }
  return { n, zc, fa, fb, fc, fd, faceZbar, isSea, wellBase, volume: dx * dy * dz };
}

/**
 * The flow system: the conductance matrix acting on u = r h (sea cells are identity rows), banded in an ordering
 * with the largest axis outermost, factorised once.
 */
function factorFlow(
  o: HenryOptions,
  g: Grid,
): { chol: BandedCholesky; order: Int32Array; bandwidth: number } {
  const { nx, ny, nz } = o, n = g.n;
  const dims = [{ n: nx, axis: 0 }, { n: ny, axis: 1 }, { n: nz, axis: 2 }].sort((a, b) => b.n - a.n);
  const order = new Int32Array(n); // cell -> band position
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      for (let c = 0; c < nx; c++) {
        const idx = [c, r, l];
        order[(l * ny + r) * nx + c] = (idx[dims[0].axis] * dims[1].n + idx[dims[1].axis]) * dims[2].n +
          idx[dims[2].axis];
      }
    }
  }
  const bandwidth = dims[1].n * dims[2].n;
  const band = new Map<number, number>(); // key pos_i * n + pos_j (j <= i)
  const addBand = (i: number, j: number, v: number) => {
    const [a, b] = order[i] >= order[j] ? [order[i], order[j]] : [order[j], order[i]];
    band.set(a * n + b, (band.get(a * n + b) ?? 0) + v);
  };
  for (let i = 0; i < n; i++) if (g.isSea[i]) addBand(i, i, 1);
  for (let f = 0; f < g.fa.length; f++) {
    const a = g.fa[f], b = g.fb[f], c = g.fc[f];
    if (!g.isSea[a]) addBand(a, a, c);
    if (!g.isSea[b]) addBand(b, b, c);
    if (!g.isSea[a] && !g.isSea[b]) addBand(a, b, -c);
  }
  try {
    return { chol: new BandedCholesky(n, bandwidth, (i, j) => band.get(i * n + j) ?? 0), order, bandwidth };
  } catch (e) {
    throw new HenryError(
      `the flow system cannot be factorised (${(e as Error).message}); check --k and the grid`,
    );
  }
}

/** The state of a Henry simulation, advanced with {@linkcode flow} then {@linkcode transport} each step. */
export class HenryScheme {
  /** Concentration per cell, kg/m3 (the end of the last step). */
  readonly conc: Float64Array;
  /** Hydraulic head per cell, m. */
  readonly head: Float64Array;
  /** Bandwidth of the factorised flow matrix. */
  readonly bandwidth: number;
  #o: HenryOptions;
  #g: Grid;
  #chol: BandedCholesky;
  #order: Int32Array;
  #A: CsrMatrix;
  #posAB: Int32Array;
  #posBA: Int32Array;
  #solver: BiCgStab;
  #wellQ: Float64Array;
  #r: Float64Array;
  #u: Float64Array;
  #q: Float64Array;
  #netOut: Float64Array;
  #rhs: Float64Array;
  #cOld: Float64Array;
  #storage: number;

  /** The initial state: head `initialHead`, the initial concentration everywhere (see `henry.ts`). */
  constructor(o: HenryOptions) {
    this.#o = o;
    const g = this.#g = buildGrid(o);
    const f = factorFlow(o, g);
    this.#chol = f.chol;
    this.#order = f.order;
    this.bandwidth = f.bandwidth;
    const nbrs: number[][] = Array.from({ length: g.n }, () => []);
    for (let k = 0; k < g.fa.length; k++) {
      nbrs[g.fa[k]].push(g.fb[k]);
      nbrs[g.fb[k]].push(g.fa[k]);
    }
    this.#A = CsrMatrix.fromNeighbours(nbrs);
    this.#posAB = Int32Array.from({ length: g.fa.length }, (_, k) => this.#A.find(g.fa[k], g.fb[k]));
    this.#posBA = Int32Array.from({ length: g.fa.length }, (_, k) => this.#A.find(g.fb[k], g.fa[k]));
    this.#solver = new BiCgStab(this.#A);
    this.conc = new Float64Array(g.n).fill(o.initialConcentration);
    this.head = new Float64Array(g.n).fill(o.initialHead);
    this.#wellQ = g.wellBase.slice();
    this.#r = new Float64Array(g.n);
    this.#u = new Float64Array(g.n);
    this.#q = new Float64Array(g.fa.length);
    this.#netOut = new Float64Array(g.n);
    this.#rhs = new Float64Array(g.n);
    this.#cOld = new Float64Array(g.n);
    this.#storage = (o.porosity * g.volume) / o.dt;
  }

  /** Steady flow of step `step`, with the density of the previous step's concentrations (lagged one step). */
  flow(step: number): void {
    const o = this.#o, g = this.#g, n = g.n, r = this.#r, u = this.#u, head = this.head, isSea = g.isSea;
    if (o.inflowAmplitude !== 0) {
      const f = 1 + o.inflowAmplitude * Math.sin((2 * Math.PI * step * o.dt) / o.inflowPeriod);
      for (let i = 0; i < n; i++) this.#wellQ[i] = g.wellBase[i] * f;
    }
    for (let i = 0; i < n; i++) r[i] = 1 + (o.drhodc * this.conc[i]) / o.denseref;
    // K_c u = Q + sum_f c zbar (r_n - r_m) (+ known sea values)
    for (let i = 0; i < n; i++) u[i] = isSea[i] ? r[i] * o.seaHead : this.#wellQ[i];
    for (let f = 0; f < g.fa.length; f++) {
      const a = g.fa[f], b = g.fb[f], c = g.fc[f];
      const gt = c * g.faceZbar[f] * (r[a] - r[b]);
      if (!isSea[a]) u[a] += isSea[b] ? gt + c * r[b] * o.seaHead : gt;
      if (!isSea[b]) u[b] += isSea[a] ? -gt + c * r[a] * o.seaHead : -gt;
    }
    const perm = new Float64Array(n);
    for (let i = 0; i < n; i++) perm[this.#order[i]] = u[i];
    this.#chol.solveInPlace(perm);
    for (let i = 0; i < n; i++) {
      u[i] = perm[this.#order[i]];
      head[i] = isSea[i] ? o.seaHead : u[i] / r[i];
    }
    this.#netOut.fill(0);
    for (let f = 0; f < g.fa.length; f++) {
      const a = g.fa[f], b = g.fb[f], z = g.faceZbar[f];
      const qf = g.fc[f] * (r[a] * (head[a] - z) - r[b] * (head[b] - z));
      this.#q[f] = qf;
      this.#netOut[a] += qf;
      this.#netOut[b] -= qf;
    }
  }

  /**
   * Transport of step `step` (backward Euler, upstream advection, diffusion); a fixed sea boundary holds its
   * concentration from here on (old value included). Returns the solver's iterations.
   */
  transport(step: number): number {
    const o = this.#o, n = this.#g.n, conc = this.conc, isSea = this.#g.isSea;
    if (o.seaBoundary === "fixed") { for (let i = 0; i < n; i++) if (isSea[i]) conc[i] = o.seaConcentration; }
    this.#cOld.set(conc);
    this.#assembleTransport();
    let st;
    try {
      st = this.#solver.solve(this.#rhs, conc);
    } catch (e) {
      throw stepFailure(o, step, `the transport solve failed (${(e as Error).message})`);
    }
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(conc[i]) || !Number.isFinite(this.head[i])) {
        throw stepFailure(
          o,
          step,
          `the solution is not finite (cell ${i + 1}: C = ${conc[i]}, h = ${this.head[i]})`,
        );
      }
    }
    return st.iterations;
  }

  #assembleTransport(): void {
    const o = this.#o, g = this.#g, A = this.#A, vals = A.values, rhs = this.#rhs, storage = this.#storage;
    vals.fill(0);
    for (let i = 0; i < g.n; i++) {
      vals[A.diag[i]] = storage;
      rhs[i] = storage * this.#cOld[i]; // fresh inflow at concentration 0 adds no mass
      if (g.isSea[i]) {
        const qb = this.#netOut[i] - this.#wellQ[i]; // water entering from the sea boundary
        if (qb > 0) rhs[i] += qb * o.seaConcentration;
        else vals[A.diag[i]] += -qb;
      }
    }
    for (let f = 0; f < g.fa.length; f++) {
      const a = g.fa[f], b = g.fb[f], qf = this.#q[f], d = g.fd[f];
      // a's balance: outflow a->b carries C_a; inflow b->a carries C_b
      if (qf > 0) {
        vals[A.diag[a]] += qf;
        vals[this.#posBA[f]] -= qf;
      } else {
        vals[this.#posAB[f]] += qf;
        vals[A.diag[b]] -= qf;
      }
      vals[A.diag[a]] += d;
      vals[A.diag[b]] += d;
      vals[this.#posAB[f]] -= d;
      vals[this.#posBA[f]] -= d;
    }
    if (o.seaBoundary !== "fixed") return;
    for (let i = 0; i < g.n; i++) {
      if (!g.isSea[i]) continue;
      for (let p = A.rowPtr[i]; p < A.rowPtr[i + 1]; p++) vals[p] = 0;
      vals[A.diag[i]] = 1;
      rhs[i] = o.seaConcentration;
    }
  }

  /**
   * Relative salt mass-balance error of the last step: storage change against boundary fluxes (with a fixed sea
   * boundary: the inner cells against the fluxes across the faces to the sea column).
   */
  massBalanceError(): number {
    const o = this.#o, g = this.#g, conc = this.conc, cOld = this.#cOld, isSea = g.isSea;
    const dtStorage = this.#storage * o.dt;
    if (o.seaBoundary === "fixed") {
      let dmIn = 0, net = 0;
      for (let i = 0; i < g.n; i++) if (!isSea[i]) dmIn += dtStorage * (conc[i] - cOld[i]);
      for (let f = 0; f < g.fa.length; f++) {
        const a = g.fa[f], b = g.fb[f];
        if (isSea[a] === isSea[b]) continue;
        const inner = isSea[a] ? b : a, sea = isSea[a] ? a : b;
        const qIn = isSea[a] ? this.#q[f] : -this.#q[f]; // flow from sea cell into inner cell
        const adv = qIn > 0 ? qIn * conc[sea] : qIn * conc[inner];
        net += (adv + g.fd[f] * (conc[sea] - conc[inner])) * o.dt;
      }
      return Math.abs(dmIn - net) / Math.max(Math.abs(dmIn) + Math.abs(net), 1e-300);
    }
    let dm = 0, inflowMass = 0, outflowMass = 0;
    for (let i = 0; i < g.n; i++) dm += dtStorage * (conc[i] - cOld[i]);
    for (let i = 0; i < g.n; i++) {
      if (!isSea[i]) continue;
      const qb = this.#netOut[i] - this.#wellQ[i];
      if (qb > 0) inflowMass += qb * o.seaConcentration * o.dt;
      else outflowMass += -qb * conc[i] * o.dt;
    }
    const net = inflowMass - outflowMass;
    return Math.abs(dm - net) / Math.max(Math.abs(dm) + inflowMass + outflowMass, 1e-300);
  }
}
