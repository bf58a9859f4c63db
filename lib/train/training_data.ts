/**
 * The data a session trains on: the built-in demo data set (generated on first use, with a smaller default model)
 * or the patch folder of the settings, loaded with the checkpoint's normalisation when resuming and checked to give
 * training and validation windows and to be the data the checkpoint was trained on.
 *
 * @module
 */

import { DataError, loadPatchDataset } from "../data/dataset.ts";
import type { PatchDataset } from "../data/dataset.ts";
import { DEMO_DIR, ensureDemoData } from "../data/demo.ts";
import { CheckpointError, IMPORTED } from "./checkpoint.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { flagValue, pathKey, SETTING_SPECS, validateSettings } from "./settings.ts";
import type { ModelSettings, TrainSettings } from "./settings.ts";

/** Model size for the built-in demo data when no model flag is given (so the default run takes minutes). */
export const DEMO_MODEL: Partial<ModelSettings> = {
  gnoRadius: 0.25,
  latentGrid: [12, 12, 12],
  fnoModes: [8, 8, 8],
  fnoHiddenChannels: 32,
  fnoLayers: 4,
  liftingChannels: 32,
  gnoMlpLayers: [32, 64, 32],
  projectionChannelRatio: 2,
  residual: true,
  residualBase: "fitted",
};

/** The patch folder of a run's settings. */
export const patchDir = (s: TrainSettings): string => `${s.data.baseDataDir}/${s.data.patchDataSubdir}`;

/**
 * Loads the training data of `s` (the demo data set when no data folder is given: then, for a new run, the demo
 * model defaults for every model setting not in `explicit`). Checks that there are training and validation windows
 * and, when resuming, that the data are the checkpoint's (other data need `forceResume`).
 */
export async function loadTrainingData(
  s: TrainSettings,
  ckpt: Checkpoint | undefined,
  explicit: Set<string>,
  forceResume: boolean,
  log: { info(m: string): void; warn(m: string): void },
  requireWindows = true,
): Promise<PatchDataset> {
  if (!s.data.baseDataDir) {
    s.data.baseDataDir = await ensureDemoData(DEMO_DIR, (m) => log.info(m));
    if (!ckpt) applyDemoModel(s, explicit, log);
  }
  const ds = await loadPatchDataset(patchDir(s), {
    targetCols: s.data.targetCols,
    inputWindow: s.data.inputWindow,
    outputWindow: s.data.outputWindow,
    stride: s.data.windowStride,
    valRatio: s.data.valRatio,
    nanPolicy: s.data.nanPolicy,
    normalization: ckpt?.state.normalization ?? undefined,
  });
  if (requireWindows) checkWindows(s, ds);
  if (ckpt) checkFingerprint(s, ckpt, ds, forceResume, log);
  return ds;
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

/** The demo data's smaller model, for every model setting not given. */
function applyDemoModel(s: TrainSettings, explicit: Set<string>, log: { info(m: string): void }): void {
  const chosen: string[] = [];
  for (const [field, value] of Object.entries(DEMO_MODEL)) {
    const spec = SETTING_SPECS.find((x) => x.path[0] === "model" && x.path[1] === field)!;
    if (explicit.has(pathKey(spec.path))) continue;
    Object.assign(s.model, { [field]: structuredClone(value) });
    const shown = Array.isArray(value) && value.every((v) => v === value[0]) ? [value[0]] : value;
    chosen.push(
      typeof value === "boolean"
        ? `--${value ? "" : "no-"}${spec.name}`
        : `--${spec.name} ${flagValue(shown)}`,
    );
  }
  if (chosen.length === 0) return;
  validateSettings(s);
  log.info(
    `built-in demo data: model defaults ${
      chosen.join(" ")
    } (a smaller model, radius ~2x the node spacing in ` +
      `standardised units, so that the default 5-epoch run finishes in a few minutes on two cores; and ` +
      `residual prediction: the correction to a linear map of each point's input window fitted to the training ` +
      `windows, which the plain reference output needs far more epochs to match; pass model flags to override)`,
  );
}
