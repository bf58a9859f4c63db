/**
 * The parameters of the Henry problem, their defaults (the MODFLOW 6 autotest) and their checks.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

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
export function stepFailure(o: HenryOptions, step: number, what: string): HenryError {
  return new HenryError(
    `step ${step} (t = ${
      (step * o.dt).toPrecision(6)
    } d): ${what}; nothing was written. Use a smaller --dt ` +
      `(now ${o.dt}) or check the parameters`,
  );
}
