/**
 * The Henry saltwater-intrusion problem with the MODFLOW 6 GWF + GWT + BUY discretisation: block-centred finite
 * volumes, steady flow in the hydraulic-head formulation with density lagged one step, backward-Euler transport
 * with upstream advection and diffusion (effective diffusion = porosity x diffc). Reproduces MODFLOW 6 to solver
 * precision; writes the raw CSV format of the toolkit.
 *
 * Flow between connected cells n and m (conductance c = K A / L, r = rho / rho_ref):
 * `q_nm = -c [ rbar (h_m - h_n) + (hbar - zbar)(r_m - r_n) ] = c [ r_n (h_n - zbar) - r_m (h_m - zbar) ]`,
 * so with u = r h the flow system is the fixed symmetric conductance matrix acting on u: it is factorised once
 * (banded Cholesky) and each step only solves with a new right-hand side.
 *
 * Order within a time step, as in MODFLOW 6 (the flow solution is advanced and solved before the transport
 * solution): density from the concentrations at the end of the previous step, flow, then transport. A fixed sea
 * boundary (`fixed`, MF6 CNC) sets its cells' concentration when transport advances (CNC's advance sets both the new
 * and the old value), so at the first step the flow still sees the initial concentration there, and the saved
 * initial state (step 0) is the initial concentration everywhere.
 *
 * @module
 */

import { ToolError } from "../errors.ts";
import { BandedCholesky, BiCgStab, CsrMatrix } from "./sparse.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";

/** Parameters of the Henry problem (defaults: the MODFLOW 6 autotest). */
export interface HenryOptions {
  /** Columns along x. Default 20. */
  nx: number;
  /** Layers along z (layer 1 at the top). Default 10. */
  nz: number;
  /** Rows along y. Default 1. */
  ny: number;
  /** Length along x, m. Default 2. */
  length: number;
  /** Height, m. Default 1. */
  height: number;
  /** Width of one y-row, m. Default 1. */
  width: number;
  /** Hydraulic conductivity, m/d. Default 864. */
  k: number;
  /** Porosity. Default 0.35. */
  porosity: number;
  /** Molecular diffusion coefficient, m2/d (effective diffusion is porosity x diffc). Default 0.57024. */
  diffc: number;
  /** Fresh-water inflow at the land side, m3/d per metre of width. Default 5.7024. */
  inflow: number;
  /** Sea-water concentration, kg/m3. Default 35. */
  seaConcentration: number;
  /** Density slope d rho / dC. Default 0.7. */
  drhodc: number;
  /** Reference density, kg/m3. Default 1000. */
  denseref: number;
  /** Initial concentration everywhere, kg/m3. Default 35. */
  initialConcentration: number;
  /** Sea boundary: `chd` (constant head with inflow at sea concentration) or `fixed` (also fixed concentration). */
  seaBoundary: "chd" | "fixed";
  /** Time step, d. Default 0.001. */
  dt: number;
  /** Time steps. Default 500. */
  steps: number;
  /** Save every this many steps (the initial state and the last step are always saved). Default 1. */
  saveEvery: number;
  /** Along-y variation of the inflow: row j gets inflow x (1 + a cos(pi (j + 0.5) / ny)). Default 0. */
  inflowVariation: number;
  /** Variation of the inflow in time: at step k the inflow is x (1 + a sin(2 pi k dt / period)). Default 0. */
  inflowAmplitude: number;
  /** Period of that variation, d. Default 0.1. */
  inflowPeriod: number;
  /** Head at the sea boundary, m. Default 1. */
  seaHead: number;
  /** Initial head, m. Default 1. */
  initialHead: number;
  /** Gravity for the reported pressure, m/s2. Default 9.81. */
  g: number;
  /**
   * Largest relative salt mass-balance error of a step that is accepted; a step above it stops the run with an
   * error (the time step is too large for the solver). Default 1e-6 (a normal run stays below 1e-10).
   */
  maxMassBalanceError: number;
}

/** The MODFLOW 6 autotest parameters. */
export const HENRY_DEFAULTS: HenryOptions = {
  nx: 20,
  nz: 10,
  ny: 1,
  length: 2,
  height: 1,
  width: 1,
  k: 864,
  porosity: 0.35,
  diffc: 0.57024,
  inflow: 5.7024,
  seaConcentration: 35,
  drhodc: 0.7,
  denseref: 1000,
  initialConcentration: 35,
  seaBoundary: "chd",
  dt: 0.001,
  steps: 500,
  saveEvery: 1,
  inflowVariation: 0,
  inflowAmplitude: 0,
  inflowPeriod: 0.1,
  seaHead: 1,
  initialHead: 1,
  g: 9.81,
  maxMassBalanceError: 1e-6,
};

/** A saved state. Cell index = ((layer - 1) ny + (row - 1)) nx + (col - 1) = node - 1. */
export interface HenryState {
  /** Time step number (0 = the initial state). */
  step: number;
  /** Simulated time, d. */
  time: number;
  /** Concentration per cell, kg/m3. */
  concentration: Float64Array;
  /** Hydraulic head per cell, m. */
  head: Float64Array;
  /** Relative salt mass-balance error of this step (0 for the initial state). */
  massBalanceError: number;
}

/** An invalid parameter; the message names the flag. */
export class HenryError extends ToolError {
  constructor(message: string) {
    super(message);
    this.name = "HenryError";
  }
}

/** Checks parameters; throws a {@linkcode HenryError} naming the flag. */
export function validateHenry(o: HenryOptions): void {
  const posInt = { nx: "--nx", nz: "--nz", ny: "--ny", steps: "--steps", saveEvery: "--save-every" } as const;
  for (const [key, flag] of Object.entries(posInt)) {
    const v = o[key as keyof typeof posInt];
    if (!Number.isInteger(v) || v < 1) throw new HenryError(`${flag} must be a positive integer, got ${v}`);
  }
  const pos = { length: "--length", height: "--height", width: "--width", k: "--k", dt: "--dt" } as const;
  for (const [key, flag] of Object.entries(pos)) {
    const v = o[key as keyof typeof pos];
    if (!(v > 0) || !Number.isFinite(v)) throw new HenryError(`${flag} must be positive, got ${v}`);
  }
  if (!(o.porosity > 0 && o.porosity <= 1)) {
    throw new HenryError(`--porosity must be in (0, 1], got ${o.porosity}`);
  }
  if (!(o.diffc >= 0)) throw new HenryError(`--diffc must be >= 0, got ${o.diffc}`);
  if (!(o.inflow >= 0)) throw new HenryError(`--inflow must be >= 0, got ${o.inflow}`);
  if (!(o.seaConcentration >= 0)) {
    throw new HenryError(`--sea-concentration must be >= 0, got ${o.seaConcentration}`);
  }
  if (!(o.initialConcentration >= 0)) {
    throw new HenryError(`--initial-concentration must be >= 0, got ${o.initialConcentration}`);
  }
  if (!Number.isFinite(o.drhodc)) throw new HenryError(`--drhodc must be a number, got ${o.drhodc}`);
  if (o.seaBoundary !== "chd" && o.seaBoundary !== "fixed") {
    throw new HenryError(`--sea-boundary must be chd or fixed, got '${o.seaBoundary}'`);
  }
  if (!(Math.abs(o.inflowVariation) < 1)) {
    throw new HenryError(`--inflow-variation must be in (-1, 1), got ${o.inflowVariation}`);
  }
  if (!(Math.abs(o.inflowAmplitude) < 1)) {
    throw new HenryError(`--inflow-amplitude must be in (-1, 1), got ${o.inflowAmplitude}`);
  }
  if (!(o.inflowPeriod > 0)) throw new HenryError(`--inflow-period must be positive, got ${o.inflowPeriod}`);
  if (o.nx < 2) throw new HenryError(`--nx must be at least 2 (a land column and a sea column), got ${o.nx}`);
  if (!Number.isFinite(o.dt * o.steps)) {
    throw new HenryError(
      `--dt ${o.dt} x --steps ${o.steps} is not a finite simulated time; use a smaller --dt`,
    );
  }
  if (!(o.maxMassBalanceError > 0)) {
    throw new HenryError(`--max-mass-balance-error must be positive, got ${o.maxMassBalanceError}`);
  }
}

/** A step whose solution cannot be trusted: the message names the step and what to change. */
function stepFailure(o: HenryOptions, step: number, what: string): HenryError {
  return new HenryError(
    `step ${step} (t = ${
      (step * o.dt).toPrecision(6)
    } d): ${what}; nothing was written. Use a smaller --dt ` +
      `(now ${o.dt}) or check the parameters`,
  );
}

/** Solver statistics of a run. */
export interface HenryStats {
  /** Seconds. */
  seconds: number;
  /** Transport iterations mean. */
  transportIterationsMean: number;
  /** Transport iterations max. */
  transportIterationsMax: number;
  /** Max mass balance error. */
  maxMassBalanceError: number;
  /** Flow bandwidth. */
  flowBandwidth: number;
}

/**
 * Runs the simulation, yielding the initial state and every saved step. The arrays of a yielded state are
 * reused: copy them to keep them past the next iteration.
 */
export function* simulateHenry(
  options: Partial<HenryOptions> = {},
  stats?: HenryStats,
): Generator<HenryState> {
  const o: HenryOptions = { ...HENRY_DEFAULTS, ...options };
  validateHenry(o);
  const t0 = performance.now();
  const { nx, ny, nz } = o;
  const n = nx * ny * nz;
  const dx = o.length / nx, dz = o.height / nz, dy = o.width;
  const cell = (lay: number, row: number, col: number) => (lay * ny + row) * nx + col;
  const zc = new Float64Array(n);
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) for (let c = 0; c < nx; c++) zc[cell(l, r, c)] = o.height - (l + 0.5) * dz;
  }

  // Faces: (a, b, flow conductance, diffusive conductance, zbar)
  const fa: number[] = [], fb: number[] = [], fc: number[] = [], fd: number[] = [];
  const dEff = o.porosity * o.diffc;
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
  const nf = fa.length;
  const faceZbar = Float64Array.from({ length: nf }, (_, f) => 0.5 * (zc[fa[f]] + zc[fb[f]]));

  // Boundary cells
  const isSea = new Uint8Array(n);
  const wellQ = new Float64Array(n);
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      isSea[cell(l, r, nx - 1)] = 1;
      const factor = 1 + o.inflowVariation * Math.cos((Math.PI * (r + 0.5)) / ny);
      wellQ[cell(l, r, 0)] += (o.inflow * dy * factor) / nz;
    }
  }

  // Flow: the conductance matrix in u = r h (sea cells are identity rows), banded in an ordering with the largest
  // axis outermost.
  const dims = [{ n: nx, axis: 0 }, { n: ny, axis: 1 }, { n: nz, axis: 2 }].sort((a, b) => b.n - a.n);
  const order = new Int32Array(n); // cell -> band position
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      for (let c = 0; c < nx; c++) {
        const idx = [c, r, l];
        order[cell(l, r, c)] = (idx[dims[0].axis] * dims[1].n + idx[dims[1].axis]) * dims[2].n +
          idx[dims[2].axis];
      }
    }
  }
  const bw = dims[1].n * dims[2].n;
  const band = new Map<number, number>(); // key pos_i * n + pos_j (j <= i)
  const addBand = (i: number, j: number, v: number) => {
    const [a, b] = order[i] >= order[j] ? [order[i], order[j]] : [order[j], order[i]];
    const key = a * n + b;
    band.set(key, (band.get(key) ?? 0) + v);
  };
  for (let i = 0; i < n; i++) if (isSea[i]) addBand(i, i, 1);
  for (let f = 0; f < nf; f++) {
    const a = fa[f], b = fb[f], c = fc[f];
    if (!isSea[a]) addBand(a, a, c);
    if (!isSea[b]) addBand(b, b, c);
    if (!isSea[a] && !isSea[b]) addBand(a, b, -c);
  }
  let chol: BandedCholesky;
  try {
    chol = new BandedCholesky(n, bw, (i, j) => band.get(i * n + j) ?? 0);
  } catch (e) {
    throw new HenryError(
      `the flow system cannot be factorised (${(e as Error).message}); check --k and the grid`,
    );
  }
  band.clear();

  // Transport matrix pattern
  const nbrs: number[][] = Array.from({ length: n }, () => []);
  for (let f = 0; f < nf; f++) {
    nbrs[fa[f]].push(fb[f]);
    nbrs[fb[f]].push(fa[f]);
  }
  const A = CsrMatrix.fromNeighbours(nbrs);
  const posAB = Int32Array.from({ length: nf }, (_, f) => A.find(fa[f], fb[f]));
  const posBA = Int32Array.from({ length: nf }, (_, f) => A.find(fb[f], fa[f]));
  const solver = new BiCgStab(A);
  const fixedConc = o.seaBoundary === "fixed";

  // The initial state is the initial concentration everywhere, the fixed sea cells included: as in MODFLOW 6, the
  // fixed concentration (CNC) is applied when transport advances into a step, after that step's flow solve, so the
  // flow of step 1 sees the initial concentration in the sea column (see the module documentation).
  const conc = new Float64Array(n).fill(o.initialConcentration);
  const head = new Float64Array(n).fill(o.initialHead);
  const r = new Float64Array(n);
  const u = new Float64Array(n);
  const q = new Float64Array(nf); // flow a -> b
  const netOut = new Float64Array(n);
  const rhs = new Float64Array(n);
  const cOld = new Float64Array(n);
  const volume = dx * dy * dz;
  const storage = (o.porosity * volume) / o.dt;
  let itSum = 0, itMax = 0, mbMax = 0;

  yield { step: 0, time: 0, concentration: conc, head, massBalanceError: 0 };
  const wellBase = wellQ.slice();
  for (let step = 1; step <= o.steps; step++) {
    if (o.inflowAmplitude !== 0) {
      const f = 1 + o.inflowAmplitude * Math.sin((2 * Math.PI * step * o.dt) / o.inflowPeriod);
      for (let i = 0; i < n; i++) wellQ[i] = wellBase[i] * f;
    }
    // 1. density from the concentrations of the previous step
    for (let i = 0; i < n; i++) r[i] = 1 + (o.drhodc * conc[i]) / o.denseref;
    // 2. flow: K_c u = Q + sum_f c zbar (r_n - r_m) (+ known sea values)
    for (let i = 0; i < n; i++) u[i] = isSea[i] ? r[i] * o.seaHead : wellQ[i];
    for (let f = 0; f < nf; f++) {
      const a = fa[f], b = fb[f], c = fc[f];
      const g = c * faceZbar[f] * (r[a] - r[b]);
      if (!isSea[a]) u[a] += isSea[b] ? g + c * r[b] * o.seaHead : g;
      if (!isSea[b]) u[b] += isSea[a] ? -g + c * r[a] * o.seaHead : -g;
    }
    const perm = new Float64Array(n);
    for (let i = 0; i < n; i++) perm[order[i]] = u[i];
    chol.solveInPlace(perm);
    for (let i = 0; i < n; i++) {
      u[i] = perm[order[i]];
      head[i] = isSea[i] ? o.seaHead : u[i] / r[i];
    }
    netOut.fill(0);
    for (let f = 0; f < nf; f++) {
      const a = fa[f], b = fb[f], z = faceZbar[f];
      const qf = fc[f] * (r[a] * (head[a] - z) - r[b] * (head[b] - z));
      q[f] = qf;
      netOut[a] += qf;
      netOut[b] -= qf;
    }
    // boundary inflow of each sea cell = its net outflow to neighbours (minus any well water it receives)
    // 3. transport, backward Euler; a fixed sea boundary holds its concentration from here on (old value included)
    if (fixedConc) { for (let i = 0; i < n; i++) if (isSea[i]) conc[i] = o.seaConcentration; }
    cOld.set(conc);
    const vals = A.values;
    vals.fill(0);
    for (let i = 0; i < n; i++) {
      vals[A.diag[i]] = storage;
      rhs[i] = storage * cOld[i];
      if (wellQ[i] > 0) {
        // inflow at concentration 0 adds no mass
      }
      if (isSea[i]) {
        const qb = netOut[i] - wellQ[i]; // water entering from the sea boundary
        if (qb > 0) rhs[i] += qb * o.seaConcentration;
        else vals[A.diag[i]] += -qb;
      }
    }
    for (let f = 0; f < nf; f++) {
      const a = fa[f], b = fb[f], qf = q[f], d = fd[f];
      // a's balance: outflow a->b carries C_a; inflow b->a carries C_b
      if (qf > 0) {
        vals[A.diag[a]] += qf;
        vals[posBA[f]] -= qf;
      } else {
        vals[posAB[f]] += qf;
        vals[A.diag[b]] -= qf;
      }
      vals[A.diag[a]] += d;
      vals[A.diag[b]] += d;
      vals[posAB[f]] -= d;
      vals[posBA[f]] -= d;
    }
    if (fixedConc) {
      for (let i = 0; i < n; i++) {
        if (!isSea[i]) continue;
        for (let p = A.rowPtr[i]; p < A.rowPtr[i + 1]; p++) vals[p] = 0;
        vals[A.diag[i]] = 1;
        rhs[i] = o.seaConcentration;
      }
    }
    let st;
    try {
      st = solver.solve(rhs, conc);
    } catch (e) {
      throw stepFailure(o, step, `the transport solve failed (${(e as Error).message})`);
    }
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(conc[i]) || !Number.isFinite(head[i])) {
        throw stepFailure(
          o,
          step,
          `the solution is not finite (cell ${i + 1}: C = ${conc[i]}, h = ${head[i]})`,
        );
      }
    }
    itSum += st.iterations;
    itMax = Math.max(itMax, st.iterations);
    // 4. salt mass balance of the step: storage change against boundary fluxes
    let dm = 0, inflowMass = 0, outflowMass = 0;
    for (let i = 0; i < n; i++) dm += storage * o.dt * (conc[i] - cOld[i]);
    for (let i = 0; i < n; i++) {
      if (!isSea[i]) continue;
      if (fixedConc) {
        // the fixed-concentration cell exchanges with its neighbours; count what crosses into the domain
        continue;
      }
      const qb = netOut[i] - wellQ[i];
      if (qb > 0) inflowMass += qb * o.seaConcentration * o.dt;
      else outflowMass += -qb * conc[i] * o.dt;
    }
    let mbErr: number;
    if (fixedConc) {
      // domain = all non-sea cells; fluxes across faces to sea cells (advective + diffusive)
      let dmIn = 0, net = 0;
      for (let i = 0; i < n; i++) if (!isSea[i]) dmIn += storage * o.dt * (conc[i] - cOld[i]);
      for (let f = 0; f < nf; f++) {
        const a = fa[f], b = fb[f];
        if (isSea[a] === isSea[b]) continue;
        const inner = isSea[a] ? b : a, sea = isSea[a] ? a : b;
        const qIn = isSea[a] ? q[f] : -q[f]; // flow from sea cell into inner cell
        const adv = qIn > 0 ? qIn * conc[sea] : qIn * conc[inner];
        net += (adv + fd[f] * (conc[sea] - conc[inner])) * o.dt;
      }
      mbErr = Math.abs(dmIn - net) / Math.max(Math.abs(dmIn) + Math.abs(net), 1e-300);
    } else {
      const net = inflowMass - outflowMass;
      mbErr = Math.abs(dm - net) / Math.max(Math.abs(dm) + inflowMass + outflowMass, 1e-300);
    }
    if (!(mbErr <= o.maxMassBalanceError)) {
      throw stepFailure(
        o,
        step,
        `the salt mass-balance error is ${(100 * mbErr).toPrecision(3)}%, above --max-mass-balance-error ` +
          `${o.maxMassBalanceError}`,
      );
    }
    mbMax = Math.max(mbMax, mbErr);
    if (step % o.saveEvery === 0 || step === o.steps) {
      yield { step, time: step * o.dt, concentration: conc, head, massBalanceError: mbErr };
    }
  }
  if (stats) {
    stats.seconds = (performance.now() - t0) / 1000;
    stats.transportIterationsMean = itSum / o.steps;
    stats.transportIterationsMax = itMax;
    stats.maxMassBalanceError = mbMax;
    stats.flowBandwidth = bw;
  }
}

/** Cell-centre coordinates and node numbering of the grid (raw CSV columns). */
export function henryGrid(
  options: Partial<HenryOptions> = {},
): { n: number; x: Float64Array; y: Float64Array; z: Float64Array; slice: Int32Array } {
  const o: HenryOptions = { ...HENRY_DEFAULTS, ...options };
  const { nx, ny, nz } = o;
  const n = nx * ny * nz;
  const x = new Float64Array(n), y = new Float64Array(n), z = new Float64Array(n), slice = new Int32Array(n);
  for (let l = 0; l < nz; l++) {
    for (let r = 0; r < ny; r++) {
      for (let c = 0; c < nx; c++) {
        const i = (l * ny + r) * nx + c;
        x[i] = ((c + 0.5) * o.length) / nx;
        y[i] = (r + 0.5) * o.width;
        z[i] = o.height - ((l + 0.5) * o.height) / nz;
        slice[i] = l + 1;
      }
    }
  }
  return { n, x, y, z, slice };
}

/** Options of {@linkcode writeHenry}. */
export interface WriteHenryOptions {
  /** Output folder: CSVs go to `<out>/all/`, parameters to `<out>/henry.json`. */
  out: string;
  /** Replace a non-empty output folder. */
  force?: boolean;
  /** Progress messages. */
  log?: (msg: string) => void;
}

/** Summary written to `henry.json`. */
export interface HenryRunInfo {
  /** Parameters. */
  parameters: HenryOptions;
  /** Saved steps. */
  saved_steps: number[];
  /** Saved times. */
  saved_times: number[];
  /** Nodes. */
  nodes: number;
  /** Stats. */
  stats: HenryStats;
}

const fmt = (v: number) => (v === 0 ? "0" : v.toPrecision(12).replace(/\.?0+(e|$)/, "$1"));

/** Runs the simulation and writes the raw CSV folder and `henry.json`. */
export async function writeHenry(
  options: Partial<HenryOptions>,
  w: WriteHenryOptions,
): Promise<HenryRunInfo> {
  const o: HenryOptions = { ...HENRY_DEFAULTS, ...options };
  validateHenry(o);
  try {
    const entries = [...Deno.readDirSync(w.out)];
    if (entries.length > 0 && !w.force) {
      throw new HenryError(`--out ${w.out} exists and is not empty; pass --force to replace it`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const tmp = `${w.out}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${tmp}/all`, { recursive: true });
  try {
    const grid = henryGrid(o);
    const prefix = Array.from(
      { length: grid.n },
      (_, i) => `${i + 1},${grid.slice[i]},${fmt(grid.x[i])},${fmt(grid.y[i])},${fmt(grid.z[i])},`,
    );
    const stats = {} as HenryStats;
    const steps: number[] = [], times: number[] = [];
    const enc = new TextEncoder();
    const width = Math.max(4, String(o.steps).length);
    for (const s of simulateHenry(o, stats)) {
      const lines = new Array<string>(grid.n + 1);
      lines[0] = "node,slice,X,Y,Z,mass_concentration,head,pressure";
      for (let i = 0; i < grid.n; i++) {
        const c = s.concentration[i], h = s.head[i];
        const p = (o.denseref + o.drhodc * c) * o.g * (h - grid.z[i]);
        lines[i + 1] = prefix[i] + `${fmt(c)},${fmt(h)},${fmt(p)}`;
      }
      await Deno.writeFile(
        `${tmp}/all/${String(s.step).padStart(width, "0")}.csv`,
        enc.encode(lines.join("\n") + "\n"),
      );
      steps.push(s.step);
      times.push(Number((s.step * o.dt).toPrecision(12)));
    }
    const info: HenryRunInfo = {
      parameters: o,
      saved_steps: steps,
      saved_times: times,
      nodes: grid.n,
      stats,
    };
    await writeTextFileAtomic(`${tmp}/henry.json`, JSON.stringify(info, null, 1) + "\n");
    const old = `${w.out}.old-${Deno.pid}`;
    let hadOld = false;
    try {
      await Deno.rename(w.out, old);
      hadOld = true;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    await Deno.rename(tmp, w.out);
    if (hadOld) await Deno.remove(old, { recursive: true });
    w.log?.(
      `henry: ${o.nx}x${o.ny}x${o.nz} cells, ${o.steps} steps in ${stats.seconds.toFixed(2)} s ` +
        `(transport iterations mean ${
          stats.transportIterationsMean.toFixed(1)
        }, max ${stats.transportIterationsMax}; ` +
        `max salt mass-balance error ${
          stats.maxMassBalanceError.toExponential(1)
        }); wrote ${steps.length} files to ${w.out}/all`,
    );
    return info;
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * Positions along x where the bottom row (of y-row `row`) first reaches each fraction of the sea concentration,
 * scanning from the land side and interpolating linearly between cell centres (NaN when never reached).
 */
export function isochlorPositions(
  concentration: ArrayLike<number>,
  options: Partial<HenryOptions> = {},
  levels = [0.25, 0.5, 0.75],
  row = 0,
): number[] {
  const o: HenryOptions = { ...HENRY_DEFAULTS, ...options };
  const { nx, ny, nz } = o;
  const dx = o.length / nx;
  const base = ((nz - 1) * ny + row) * nx;
  return levels.map((lv) => {
    const target = lv * o.seaConcentration;
    for (let c = 0; c < nx; c++) {
      const v = concentration[base + c];
      if (v >= target) {
        if (c === 0) return 0.5 * dx;
        const prev = concentration[base + c - 1];
        return (c - 0.5) * dx + ((target - prev) / (v - prev)) * dx;
      }
    }
    return NaN;
  });
}

/**
 * Parameters of the built-in demo data set: a 3D slab, fresh start, fixed sea boundary, inflow varying along y
 * (+-30%) and in time (+-50%, period 0.1 d), so the wedge intrudes and then keeps moving over the whole series
 * (the validation part is not a steady state that persistence would predict perfectly).
 */
export const HENRY_DEMO: Partial<HenryOptions> = {
  nx: 32,
  nz: 16,
  ny: 4,
  initialConcentration: 0,
  seaBoundary: "fixed",
  steps: 300,
  saveEvery: 2,
  inflowVariation: 0.3,
  inflowAmplitude: 0.5,
  inflowPeriod: 0.1,
};
