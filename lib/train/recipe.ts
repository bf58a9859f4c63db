/**
 * What a new run chooses from its data when the user does not: the windows and the validation share from the
 * length of the series, the model from the patches' size and point spacing, the batch, the number of epochs from
 * the steps a run needs, and the schedule. Every choice is one log line saying what and why, and any flag given
 * wins. `--reference` instead takes the reference training script's values for every setting not given (its
 * model, plain output, windows 10/10, validation 0.3, batch 32, exponential schedule), exactly.
 *
 * A series too short for one training and one validation window, and a steady state (one or two saved steps),
 * are refused here with the numbers (exit 2).
 *
 * @module
 */

import { DataError } from "../data/data_error.ts";
import type { PatchDataset } from "../data/dataset.ts";
import { KdTree } from "../data/kdtree.ts";
import { chooseWindows, PREFERRED_WINDOWS, seriesSteps, valRatioFor } from "../data/windows.ts";
import { flagValue, pathKey, SETTING_SPECS } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";

/** Optimiser steps a run of the chosen model takes by default (the epochs follow from the batches per epoch). */
export const TARGET_STEPS = 2000;

/** Windows per batch of the chosen recipe: more, cheaper steps (the reference's 32 learns far slower per second). */
export const AUTO_BATCH = 4;

type Log = { info(m: string): void };

const given = (explicit: Set<string>, group: keyof TrainSettings, field: string) =>
  explicit.has(`${group}.${field}`);

/** Sets a setting not given by the user; returns the flag as it would be written, for the log. */
function choose(
  s: TrainSettings,
  explicit: Set<string>,
  group: keyof TrainSettings,
  field: string,
  value: unknown,
): string | undefined {
  if (given(explicit, group, field)) return undefined;
  const spec = SETTING_SPECS.find((x) => pathKey(x.path) === `${group}.${field}`)!;
  (s[group] as unknown as Record<string, unknown>)[field] = structuredClone(value);
  if (typeof value === "boolean") return `--${value ? "" : "no-"}${spec.name}`;
  const shown = Array.isArray(value) && value.every((v) => v === value[0]) ? [value[0]] : value;
  return `--${spec.name} ${flagValue(shown)}`;
}

/**
 * The windows and validation share of a new run (before the data are loaded: they decide the training part the
 * statistics come from). With `--reference`, the reference's; else chosen from the series' length. Refuses series
 * too short for the windows (given or chosen) with the steps it has and needs.
 */
export async function chooseRunWindows(
  s: TrainSettings,
  explicit: Set<string>,
  dir: string,
  log: Log,
): Promise<void> {
  const steps = await seriesSteps(dir);
  if (steps === 0) return; // no patches: the loader says so
  const d = s.data;
  const auto = !s.model.reference;
  if (auto && !given(explicit, "data", "inputWindow") && !given(explicit, "data", "outputWindow")) {
    const { windows, why } = chooseWindows(steps);
    const flags = [
      choose(s, explicit, "data", "inputWindow", windows.input),
      choose(s, explicit, "data", "outputWindow", windows.output),
      choose(s, explicit, "data", "valRatio", Number(valRatioFor(steps, windows.valSteps).toFixed(6))),
    ].filter((f) => f);
    if (flags.length) log.info(`windows: ${flags.join(" ")} (${why}; flags choose otherwise)`);
  } else if (auto && !given(explicit, "data", "valRatio")) {
    // windows given: hold out 30%, or one window's span where 30% is shorter
    const span = d.inputWindow + d.outputWindow;
    const valSteps = Math.max(span, Math.ceil(PREFERRED_WINDOWS.valRatio * steps));
    if (valSteps < steps) d.valRatio = Number(valRatioFor(steps, valSteps).toFixed(6));
  }
  if (steps <= 2) chooseWindows(steps); // a steady state: refused saying why, whatever the windows
  const span = d.inputWindow + d.outputWindow;
  const trainSteps = Math.floor(steps * (1 - d.valRatio)), valSteps = steps - trainSteps;
  if (trainSteps >= span && valSteps >= span) return;
  let need = steps;
  while (Math.floor(need * (1 - d.valRatio)) < span || need - Math.floor(need * (1 - d.valRatio)) < span) {
    need++;
  }
  const which = trainSteps < span ? "training" : "validation";
  const part = trainSteps < span ? `the first ${trainSteps}` : `the last ${valSteps}`;
  const fix = trainSteps < span
    ? "use smaller windows (--input-window-size, --output-window-size) or a smaller --val-ratio"
    : "raise --val-ratio or use smaller windows (--input-window-size, --output-window-size)";
  throw new DataError(
    `no ${which} windows in ${dir}: the series have ${steps} saved steps and the ${which} part (${part}, ` +
      `--val-ratio ${d.valRatio}) is shorter than one window of ${d.inputWindow} + ${d.outputWindow} steps; ` +
      `these windows need at least ${need} saved steps; ${fix}${
        s.model.reference ? ", or leave out --reference (windows are then chosen from the series)" : ""
      }`,
  );
}

/**
 * The model, batch, epochs and schedule of a new run, for every setting not given: the reference's with
 * `--reference`, else chosen from the loaded data (see the module documentation). Logs each choice.
 */
export function chooseRunModel(s: TrainSettings, explicit: Set<string>, ds: PatchDataset, log: Log): void {
  if (s.model.reference) {
    choose(s, explicit, "optim", "lrSchedule", "exponential");
    const schedule = s.optim.lrSchedule === "exponential"
      ? `exponential (x${s.optim.lrGamma} every ${s.optim.lrSchedulerInterval} epochs)`
      : s.optim.lrSchedule;
    log.info(
      `--reference: the reference training script's model and output, windows ` +
        `${s.data.inputWindow}/${s.data.outputWindow}, --val-ratio ${s.data.valRatio}, --batch-size ` +
        `${s.data.batchSize}, --lr-schedule ${schedule}, for every setting not given`,
    );
    return;
  }
  const shape = dataShape(ds);
  const m = modelFor(shape);
  const model = [
    choose(s, explicit, "model", "gnoRadius", m.radius),
    choose(s, explicit, "model", "latentGrid", [m.grid, m.grid, m.grid]),
    choose(s, explicit, "model", "fnoModes", [m.modes, m.modes, m.modes]),
    choose(s, explicit, "model", "fnoHiddenChannels", m.width),
    choose(s, explicit, "model", "fnoLayers", 4),
    choose(s, explicit, "model", "liftingChannels", m.width),
    choose(s, explicit, "model", "gnoMlpLayers", [32, 64, 32]),
    choose(s, explicit, "model", "projectionChannelRatio", 2),
    choose(s, explicit, "model", "residual", true),
    choose(s, explicit, "model", "residualBase", "fitted"),
  ].filter((f) => f);
  if (model.length) {
    log.info(
      `model: ${model.join(" ")} (patches of ~${Math.round(shape.points)} points ${
        shape.spacing.toFixed(3)
      } apart in standardised units: a latent grid about as fine as the points, a radius of ~2.3 spacings; a ` +
        `residual model that corrects a linear forecast of each point's window fitted to the training windows; ` +
        `--reference or model flags choose otherwise)`,
    );
  }
  const batch = choose(s, explicit, "data", "batchSize", AUTO_BATCH);
  const batches = ds.windowCounts("train").reduce((a, w) => a + Math.ceil(w / s.data.batchSize), 0);
  const epochs = s.optim.timeBudget !== undefined
    ? undefined
    : choose(s, explicit, "optim", "epochs", Math.min(200, Math.max(3, Math.ceil(TARGET_STEPS / batches))));
  const run = [batch, epochs].filter((f) => f);
  if (run.length) {
    log.info(
      `training: ${run.join(" ")} (${batches} batches per epoch; about ${TARGET_STEPS} steps, which the ` +
        `correction needs, annealed by the ${s.optim.lrSchedule} schedule; --epochs or --time-budget choose otherwise)`,
    );
  }
}

/** What the model is sized from: points per patch (median) and their spacing (median nearest-neighbour distance). */
interface DataShape {
  points: number;
  spacing: number;
}

function dataShape(ds: PatchDataset): DataShape {
  const sizes = ds.patches.map((p) => p.n).sort((a, b) => a - b);
  const d: number[] = [];
  const idx = new Int32Array(2), d2 = new Float64Array(2);
  for (const p of ds.patches) {
    const pts = Float64Array.from(p.coords);
    const tree = new KdTree(pts);
    const every = Math.max(1, Math.floor(p.n / 200)); // a sample of each patch's points
    for (let j = 0; j < p.n; j += every) {
      if (tree.knn(pts[j * 3], pts[j * 3 + 1], pts[j * 3 + 2], 2, idx, d2) === 2) d.push(Math.sqrt(d2[1]));
    }
  }
  d.sort((a, b) => a - b);
  return { points: sizes[Math.floor(sizes.length / 2)] ?? 0, spacing: d[Math.floor(d.length / 2)] ?? 0 };
}

/**
 * The chosen model for patches of this shape: a latent grid of about as many nodes per axis as a patch has points
 * per axis (8 to 16, even), FNO modes up to 8, width 32, and a radius of 2.3 point spacings (at least 0.05).
 */
export function modelFor(shape: DataShape): { grid: number; modes: number; width: number; radius: number } {
  const perAxis = Math.cbrt(Math.max(1, shape.points));
  const grid = Math.min(16, Math.max(8, 2 * Math.round(perAxis / 2)));
  const radius = Math.max(0.05, Number((2.3 * (shape.spacing || 0.1)).toPrecision(2)));
  return { grid, modes: Math.min(8, grid), width: 32, radius };
}
