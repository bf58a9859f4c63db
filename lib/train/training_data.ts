/**
 * The data a session trains on: the built-in demo data set (generated on first use, with a smaller default model)
 * or the patch folder of the settings, loaded with the checkpoint's normalisation when resuming and checked to give
 * training and validation windows and to be the data the checkpoint was trained on.
 *
 * @module
 */

import { DataError, loadPatchDataset, OBS_COLUMNS } from "../data/dataset.ts";
import type { PatchDataset } from "../data/dataset.ts";
import { DEMO_DIR, ensureDemoData } from "../data/demo.ts";
import { CheckpointError, IMPORTED } from "./checkpoint.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { validateSettings } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";
import { chooseRunModel, chooseRunWindows } from "./recipe.ts";

/** The patch folder of a run's settings. */
export const patchDir = (s: TrainSettings): string => `${s.data.baseDataDir}/${s.data.patchDataSubdir}`;

/**
 * Loads the training data of `s` (the demo data set when no data folder is given). For a new run, the windows,
 * model, batch and epochs not in `explicit` are chosen from the data first (`recipe.ts`). Checks that there are
 * training and validation windows and, when resuming, that the data are the checkpoint's (other data need
 * `forceResume`).
 */
export async function loadTrainingData(
  s: TrainSettings,
  ckpt: Checkpoint | undefined,
  explicit: Set<string>,
  forceResume: boolean,
  log: { info(m: string): void; warn(m: string): void },
  requireWindows = true,
): Promise<PatchDataset> {
  if (!s.data.baseDataDir) s.data.baseDataDir = await ensureDemoData(DEMO_DIR, (m) => log.info(m));
  if (!ckpt && !explicit.has("data.targetCols")) await targetsTheDataHas(s, log);
  if (!ckpt) await chooseRunWindows(s, explicit, patchDir(s), log);
  const load = (targetCols: TrainSettings["data"]["targetCols"]) =>
    loadPatchDataset(patchDir(s), {
      targetCols,
      inputWindow: s.data.inputWindow,
      outputWindow: s.data.outputWindow,
      stride: s.data.windowStride,
      valRatio: s.data.valRatio,
      nanPolicy: s.data.nanPolicy,
      normalization: ckpt?.state.normalization ?? undefined,
    });
  let ds = await load(s.data.targetCols);
  if (!ckpt) {
    if (!explicit.has("data.targetCols")) ds = await varyingTarget(s, ds, load, log);
    checkVarying(s, ds);
    chooseRunModel(s, explicit, ds, log);
    validateSettings(s);
  }
  if (requireWindows) checkWindows(s, ds);
  checkPoints(s, ds, log);
  if (ckpt) checkFingerprint(s, ckpt, ds, forceResume, log);
  return ds;
}

/**
 * The default target (mass_concentration) where the data holds it; else the first column the data has (a patch
 * folder prepared from MODFLOW 6 heads without concentrations holds head and pressure), said in the log.
 */
async function targetsTheDataHas(s: TrainSettings, log: { info(m: string): void }): Promise<void> {
  let meta: { missing_columns?: string[] };
  try {
    meta = JSON.parse(await Deno.readTextFile(`${patchDir(s)}/patches.json`));
  } catch {
    return; // no metadata: the loader checks the columns
  }
  const missing = s.data.targetCols.filter((c) => meta.missing_columns?.includes(c));
  const have = OBS_COLUMNS.filter((c) => !meta.missing_columns?.includes(c));
  if (!missing.length || !have.length) return;
  s.data.targetCols = [have[0]];
  log.info(
    `target column ${have[0]}: the data holds no ${
      missing.join(", ")
    } (prepared without it, e.g. from MODFLOW 6 ` +
      `heads alone); --target-cols to choose (${have.join(", ")})`,
  );
}

/**
 * The target columns with nothing to forecast: one value in every training step of every point, or values that
 * do not change from one step to the next at any point (a steady state saved many times: persistence is exact).
 */
const constantColumns = (ds: PatchDataset) =>
  ds.normalization.columns.filter((_, i) =>
    !(ds.normalization.std[i] > 0) || largestStepChange(ds, i) <= STATIC
  );

/** Changes between steps at or below this (standardised units) are no change: float32 noise of a steady field. */
const STATIC = 1e-6;

/** The largest change of column `c` between two consecutive training steps at any core point (standardised). */
function largestStepChange(ds: PatchDataset, c: number): number {
  let most = 0;
  for (const p of ds.patches) {
    for (let j = 0; j < p.nCore; j++) {
      const row = (c * p.n + j) * p.steps;
      for (let t = 1; t < p.trainSteps; t++) {
        const d = Math.abs(p.values[row + t] - p.values[row + t - 1]);
        if (d > most) most = d;
      }
    }
  }
  return most;
}

/**
 * The default target where it varies; else the first column of the data that does (a model whose concentration
 * stays 0 over the saved steps trains on heads), said in the log.
 */
async function varyingTarget(
  s: TrainSettings,
  ds: PatchDataset,
  load: (cols: TrainSettings["data"]["targetCols"]) => Promise<PatchDataset>,
  log: { info(m: string): void },
): Promise<PatchDataset> {
  const flat = constantColumns(ds);
  if (!flat.length) return ds;
  let missing: string[] = [];
  try {
    missing = JSON.parse(await Deno.readTextFile(`${patchDir(s)}/patches.json`)).missing_columns ?? [];
  } catch {
    // no metadata: every column is there
  }
  const reasons = flat.map((f) => whyFlat(ds, f));
  for (const c of OBS_COLUMNS.filter((c) => !missing.includes(c) && !s.data.targetCols.includes(c))) {
    const other = await load([c]);
    if (constantColumns(other).length) {
      reasons.push(whyFlat(other, c));
      continue;
    }
    log.info(
      `target column ${c}: ${
        flat.map((f) => whyFlat(ds, f)).join("; ")
      } (nothing to learn); --target-cols to choose`,
    );
    s.data.targetCols = [c];
    return other;
  }
  throw new DataError(
    `${patchDir(s)}: ${reasons.join("; ")}: no column has anything to forecast (or export saved steps in ` +
      `which the fields change)`,
  );
}

/** Why a column of {@linkcode constantColumns} has nothing to forecast, in words. */
function whyFlat(ds: PatchDataset, c: string): string {
  const i = ds.normalization.columns.indexOf(c);
  return ds.normalization.std[i] > 0
    ? `${c} does not change from one training step to the next at any point (a steady state: persistence is exact)`
    : `${c} holds one value in every training step (${ds.normalization.mean[i]})`;
}

/** Refuses target columns with nothing to forecast (and a relative loss that would divide by 0 on a constant). */
function checkVarying(s: TrainSettings, ds: PatchDataset): void {
  const flat = constantColumns(ds);
  if (!flat.length) return;
  throw new DataError(
    `${patchDir(s)}: ${flat.map((c) => whyFlat(ds, c)).join("; ")}: there is nothing to learn; choose ` +
      `others with --target-cols (or export saved steps in which the field changes)`,
  );
}

/** Fewest points a data set needs, and fewest per patch before a warning. */
const MIN_POINTS = 2, FEW_POINTS = 8;

/**
 * A neural operator learns how a field varies in space: a data set of one point cannot teach it anything (its
 * forecast would be far worse than persisting the last step), and patches of a handful of points teach little.
 */
function checkPoints(s: TrainSettings, ds: PatchDataset, log: { warn(m: string): void }): void {
  const points = ds.patches.reduce((a, p) => a + p.nCore, 0);
  if (points < MIN_POINTS) {
    throw new DataError(
      `${
        patchDir(s)
      } holds ${points} point(s): a neural operator learns how the fields vary in space and needs ` +
        `at least ${MIN_POINTS}; prepare a model with more active cells (or nodes)`,
    );
  }
  const few = ds.patches.filter((p) => p.nCore < FEW_POINTS);
  if (few.length) {
    log.warn(
      `warning: ${few.length} patch(es) hold fewer than ${FEW_POINTS} points (${
        few.slice(0, 5).map((p) => `${p.name}: ${p.nCore}`).join(", ")
      }${few.length > 5 ? ", ..." : ""}): too few to learn much from; prepare fewer, larger patches ` +
        `(--n-patches)`,
    );
  }
}

function checkWindows(s: TrainSettings, ds: PatchDataset): void {
  const span = `${s.data.inputWindow} + ${s.data.outputWindow} steps`;
  if (ds.windowCounts("train").every((c) => c === 0)) {
    throw new DataError(
      `no training windows in ${
        patchDir(s)
      }: every patch's training part is shorter than ${span}; use smaller ` +
        `windows (--input-window-size, --output-window-size) or a smaller --val-ratio`,
    );
  }
  if (ds.windowCounts("val").every((c) => c === 0)) {
    throw new DataError(
      `no validation windows in ${
        patchDir(s)
      }: every patch's validation part (--val-ratio ${s.data.valRatio}) ` +
        `is shorter than ${span}; raise --val-ratio or use smaller windows`,
    );
  }
}

/** Imported weights adopt these data; a trained checkpoint must have been trained on them (or `forceResume`). */
function checkFingerprint(
  s: TrainSettings,
  ckpt: Checkpoint,
  ds: PatchDataset,
  forceResume: boolean,
  log: { info(m: string): void; warn(m: string): void },
): void {
  if (ckpt.state.data_fingerprint === IMPORTED) {
    log.info(
      `starting from imported weights ${ckpt.path}: normalisation statistics computed from ${patchDir(s)}`,
    );
    ckpt.state.normalization = ds.normalization;
    ckpt.state.data_fingerprint = ds.fingerprint;
    return;
  }
  if (ckpt.state.data_fingerprint === ds.fingerprint) return;
  const msg =
    `the data differ from the checkpoint's (data fingerprint: saved ${ckpt.state.data_fingerprint}, ` +
    `now ${ds.fingerprint}; ${patchDir(s)})`;
  if (!forceResume) {
    throw new CheckpointError(
      `cannot resume ${ckpt.path}: ${msg}; pass --force-resume to continue on these data`,
    );
  }
  log.warn(`warning: ${msg}; continuing because of --force-resume (the saved normalisation is used)`);
}
