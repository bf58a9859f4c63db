/**
 * Which windows a series of a given length allows: the reference's 10 input and 10 output steps with 30% of the
 * steps held out for validation where the series is long enough, shorter windows where it is not, and a refusal
 * (with the steps it has and needs) where not even one training and one validation window fit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseWindows } from "./windows.ts";
 * assert.deepEqual(chooseWindows(151).windows, { input: 10, output: 10, valSteps: 46 }); // the demo: 10/10, 0.3
 * assert.deepEqual(chooseWindows(20).windows, { input: 4, output: 4, valSteps: 8 });
 * ```
 *
 * @module
 */

import { DataError } from "./data_error.ts";
import { countWindows, listPatchDirs } from "./dataset.ts";
import { readNpyShape } from "../io/npy.ts";

/** The windows the toolkit prefers (the reference's): 10 input and 10 output steps, 30% held out. */
export const PREFERRED_WINDOWS = { input: 10, output: 10, valRatio: 0.3 };

/** Training windows per patch below which shorter windows are chosen (where the series allows). */
const MIN_TRAIN_WINDOWS = 4;

/** A choice of windows: steps in and out, and the steps of each patch held out for validation. */
export interface WindowChoice {
  /** Input steps T_in. */
  input: number;
  /** Output steps T_out. */
  output: number;
  /** Steps of each series held out for validation. */
  valSteps: number;
}

/**
 * The windows for series of `steps` saved steps: 10/10 with 30% held out where that leaves at least
 * {@linkcode MIN_TRAIN_WINDOWS} training windows; else the longest equal windows that do (with the validation part
 * one window long at least); else the longest that give one training and one validation window. Throws a
 * `DataError` for series too short even for windows of one step, naming the steps it has and needs.
 */
export function chooseWindows(steps: number): { windows: WindowChoice; why: string } {
  if (steps <= 2) {
    throw new DataError(
      `the series have ${steps} saved time step(s): a steady state (or a single snapshot) holds no evolution in ` +
        `time to learn; a forecast needs at least 4 saved steps (one training and one validation window of one ` +
        `input and one output step), and useful training far more`,
    );
  }
  const fits = (w: number, minTrain: number) => {
    const valSteps = Math.max(2 * w, Math.ceil(PREFERRED_WINDOWS.valRatio * steps));
    return countWindows(steps - valSteps, 2 * w) >= minTrain ? { input: w, output: w, valSteps } : undefined;
  };
  for (const minTrain of [MIN_TRAIN_WINDOWS, 1]) {
    for (let w = PREFERRED_WINDOWS.input; w >= 1; w--) {
      const c = fits(w, minTrain);
      if (!c) continue;
      const why = w === PREFERRED_WINDOWS.input
        ? `the series have ${steps} steps: ${w} in, ${w} out, the last ${c.valSteps} steps (30%) for validation`
        : `the series have ${steps} steps, too few for 10 in + 10 out with 30% held out and ` +
          `${MIN_TRAIN_WINDOWS} training windows: ${w} in, ${w} out, the last ${c.valSteps} steps for validation ` +
          `(${countWindows(steps - c.valSteps, 2 * w)} training and ${
            countWindows(c.valSteps, 2 * w)
          } validation window(s) per patch)`;
      return { windows: c, why };
    }
  }
  throw new DataError(
    `the series have ${steps} saved time steps: too few for one training and one validation window even of one ` +
      `input and one output step (that needs 4); export more saved steps (MODFLOW 6: save the heads or ` +
      `concentrations at more time steps, e.g. SAVE HEAD ALL in the output control)`,
  );
}

/** The validation share that holds out exactly `valSteps` of `steps` (the training part is `floor(T (1 - r))`). */
export const valRatioFor = (steps: number, valSteps: number): number => (valSteps - 0.5) / steps;

/** The fewest saved steps of the series in a patch folder (from the `.npy` headers; no data read). */
export async function seriesSteps(dir: string): Promise<number> {
  let steps = Infinity;
  for (const name of await listPatchDirs(dir)) {
    const { shape } = await readNpyShape(`${dir}/${name}/core_obs.npy`);
    steps = Math.min(steps, shape[0]);
  }
  return Number.isFinite(steps) ? steps : 0;
}
