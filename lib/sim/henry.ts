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

import { HenryScheme } from "./scheme.ts";
import { HENRY_DEFAULTS, HenryError, stepFailure, validateHenry } from "./henry_options.ts";
import type { HenryOptions } from "./henry_options.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { disItems, encodeGrb, Mf6OutputWriter } from "../io/mf6.ts";

export { HENRY_DEFAULTS, HenryError, validateHenry } from "./henry_options.ts";
export type { HenryOptions } from "./henry_options.ts";

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

/** Solver statistics of a run. */
export interface HenryStats {
  /** Wall time of the simulation, s. */
  seconds: number;
  /** Mean BiCGSTAB iterations of a transport solve. */
  transportIterationsMean: number;
  /** Most BiCGSTAB iterations of one transport solve. */
  transportIterationsMax: number;
  /** Largest relative salt mass-balance error of a step. */
  maxMassBalanceError: number;
  /** Bandwidth of the factorised flow matrix. */
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
  const scheme = new HenryScheme(o);
  let itSum = 0, itMax = 0, mbMax = 0;
  yield { step: 0, time: 0, concentration: scheme.conc, head: scheme.head, massBalanceError: 0 };
  for (let step = 1; step <= o.steps; step++) {
    scheme.flow(step);
    const iterations = scheme.transport(step);
    itSum += iterations;
    itMax = Math.max(itMax, iterations);
    const mbErr = scheme.massBalanceError();
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
      yield {
        step,
        time: step * o.dt,
        concentration: scheme.conc,
        head: scheme.head,
        massBalanceError: mbErr,
      };
    }
  }
  if (stats) {
    stats.seconds = (performance.now() - t0) / 1000;
    stats.transportIterationsMean = itSum / o.steps;
    stats.transportIterationsMax = itMax;
    stats.maxMassBalanceError = mbMax;
    stats.flowBandwidth = scheme.bandwidth;
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
  /**
   * `csv` (default): one CSV per saved step in `<out>/all/`; `mf6`: MODFLOW 6's binary files in `<out>/`
   * (`henry.dis.grb`, `henry.hds`, `henry.ucn`; like MODFLOW 6, without the initial state).
   */
  format?: "csv" | "mf6";
}

/** Summary written to `henry.json`. */
export interface HenryRunInfo {
  /** Every parameter of the run, defaults filled in. */
  parameters: HenryOptions;
  /** Time steps written, one CSV each (0 is the initial state). */
  saved_steps: number[];
  /** Simulated time of each written step, d. */
  saved_times: number[];
  /** Cells (nodes) per file. */
  nodes: number;
  /** Solver statistics. */
  stats: HenryStats;
}

/**
 * A value with 12 significant digits, trailing zeros of the mantissa dropped (never those of the exponent:
 * 1.5e-10 stays 1.5e-10).
 */
export function formatValue(v: number): string {
  if (v === 0) return "0";
  const [mantissa, exponent] = v.toPrecision(12).split("e");
  const m = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
  return exponent === undefined ? m : `${m}e${exponent}`;
}
const fmt = formatValue;

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
  if (w.format === "mf6") return await writeHenryMf6(o, w, tmp);
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
    await swapIn(tmp, w.out);
    logRun(o, stats, w, `wrote ${steps.length} files to ${w.out}/all`);
    return info;
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/**
 * The same run written as MODFLOW 6 writes it: the binary grid file of a DIS grid (layer 1 at the top, row 1 the
 * northernmost, so cell centres equal the CSV's coordinates), and head and concentration files with one record per
 * layer and saved step (TOTIM = step x dt; the initial state is not saved, as in MODFLOW 6).
 */
async function writeHenryMf6(o: HenryOptions, w: WriteHenryOptions, tmp: string): Promise<HenryRunInfo> {
  try {
    await Deno.remove(`${tmp}/all`);
    const { nx, ny, nz } = o;
    const dz = o.height / nz;
    const top = new Float64Array(nx * ny).fill(o.height);
    const botm = new Float64Array(nx * ny * nz);
    for (let k = 0; k < nz; k++) botm.fill(o.height - (k + 1) * dz, k * nx * ny, (k + 1) * nx * ny);
    const items = disItems(
      {
        nlay: nz,
        nrow: ny,
        ncol: nx,
        delr: new Float64Array(nx).fill(o.length / nx),
        delc: new Float64Array(ny).fill(o.width),
      },
      top,
      botm,
    );
    await writeFileAtomic(`${tmp}/henry.dis.grb`, encodeGrb("DIS", items));
    const hds = await Mf6OutputWriter.create(`${tmp}/henry.hds`, "HEAD");
    const ucn = await Mf6OutputWriter.create(`${tmp}/henry.ucn`, "CONCENTRATION");
    const stats = {} as HenryStats;
    const steps: number[] = [], times: number[] = [];
    const layer = new Float64Array(nx * ny);
    for (const st of simulateHenry(o, stats)) {
      if (st.step === 0) continue;
      const totim = Number((st.step * o.dt).toPrecision(12));
      for (const [file, values] of [[hds, st.head], [ucn, st.concentration]] as const) {
        for (let k = 0; k < nz; k++) {
          // MODFLOW 6 row i is the generator's row ny - 1 - i
          for (let i = 0; i < ny; i++) {
            for (let j = 0; j < nx; j++) layer[i * nx + j] = values[(k * ny + (ny - 1 - i)) * nx + j];
          }
          await file.record(
            { kstp: st.step, kper: 1, pertim: totim, totim, ncol: nx, nrow: ny, ilay: k + 1 },
            layer,
          );
        }
      }
      steps.push(st.step);
      times.push(totim);
    }
    await hds.close();
    await ucn.close();
    const info: HenryRunInfo = {
      parameters: o,
      saved_steps: steps,
      saved_times: times,
      nodes: nx * ny * nz,
      stats,
    };
    await writeTextFileAtomic(`${tmp}/henry.json`, JSON.stringify(info, null, 1) + "\n");
    await swapIn(tmp, w.out);
    logRun(
      o,
      stats,
      w,
      `wrote henry.dis.grb, henry.hds and henry.ucn (${steps.length} saved steps) to ${w.out}`,
    );
    return info;
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** Moves the finished folder `tmp` to `out`; an older `out` is removed only after. */
async function swapIn(tmp: string, out: string): Promise<void> {
  {
    const w = { out };
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
  }
}

function logRun(o: HenryOptions, stats: HenryStats, w: WriteHenryOptions, what: string): void {
  w.log?.(
    `henry: ${o.nx}x${o.ny}x${o.nz} cells, ${o.steps} steps in ${stats.seconds.toFixed(2)} s ` +
      `(transport iterations mean ${
        stats.transportIterationsMean.toFixed(1)
      }, max ${stats.transportIterationsMax}; ` +
      `max salt mass-balance error ${stats.maxMassBalanceError.toExponential(1)}); ${what}`,
  );
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
