/**
 * The settings of a training run, typed: what data ({@linkcode DataSettings}), which model
 * ({@linkcode ModelSettings}), how to optimise ({@linkcode OptimSettings}) and how to run ({@linkcode RunSettings}).
 * Each setting is declared once in {@linkcode SETTING_SPECS} with its flag, type, default, help, check and what a
 * resume may do with it; the command line, `--config` files, saved runs and the library all go through it.
 *
 * A run saves its settings in `config.json` and in every checkpoint; {@linkcode settingsFromSaved} also reads the
 * first format (flag names as keys).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultSettings, validateSettings } from "./settings.ts";
 * const s = defaultSettings();
 * s.model.latentGrid = [16, 16, 16];
 * validateSettings(s); // throws a FlagError naming the flag when something does not fit
 * assert.ok(s.model.fnoModes[0] === 8);
 * ```
 *
 * @module
 */

import {
  FlagError,
  nonNegative,
  perAxis,
  positive,
  positiveInt,
  valueFromJson,
  widths,
} from "../flagspec.ts";
import type { FlagSpec } from "../flagspec.ts";
import { OBS_COLUMNS } from "../data/dataset.ts";
import type { ObsColumn } from "../data/dataset.ts";
import type { GinoConfig } from "../model/config.ts";
import type { BackendName } from "../model/backend.ts";
import type { ResidualBase } from "../model/residual.ts";
import { LR_SCHEDULES } from "./schedule.ts";
import type { LrSchedule } from "./schedule.ts";

/** Which data a run trains on, and how it is cut into windows and batches. */
export interface DataSettings {
  /** Folder holding the raw and patch subfolders; undefined: the built-in demo data set. */
  baseDataDir?: string;
  /** Raw CSV subfolder (for `prepare`). */
  rawDataSubdir: string;
  /** Patch subfolder that training reads. */
  patchDataSubdir: string;
  /** Target columns, in channel order. */
  targetCols: ObsColumn[];
  /** Input steps T_in of a window. */
  inputWindow: number;
  /** Output steps T_out of a window. */
  outputWindow: number;
  /** Steps between window starts. */
  windowStride: number;
  /** Windows per batch; a batch holds windows of one patch. */
  batchSize: number;
  /** Share of each patch's steps held out for validation, in (0, 1). */
  valRatio: number;
  /** Seed of every random choice (weights, batch order). */
  seed: number;
  /** Re-form each patch's batches every epoch. */
  shuffleWithinBatches: boolean;
  /** Shuffle the order of batches every epoch. */
  shufflePatches: boolean;
  /** NaN/Inf in the data: stop with an error, or drop the affected points. */
  nanPolicy: "fail" | "drop";
}

/** The GINO (the reference training script's parameters) and its output. */
export interface ModelSettings {
  /** Radius of both GNOs, in standardised coordinate units. */
  gnoRadius: number;
  /** Latent grid points per axis (x, y, z). */
  latentGrid: [number, number, number];
  /** FNO modes per axis (x, y, z; z is the real-FFT axis). */
  fnoModes: [number, number, number];
  /** FNO width. */
  fnoHiddenChannels: number;
  /** FNO blocks. */
  fnoLayers: number;
  /** Hidden width of the lifting MLP. */
  liftingChannels: number;
  /** Hidden widths of the GNO kernel MLPs. */
  gnoMlpLayers: number[];
  /** Projection hidden width = ratio x FNO width. */
  projectionChannelRatio: number;
  /** Predict the correction to a simple forecast (beyond the reference GINO). */
  residual: boolean;
  /** The forecast a residual model corrects: the last input step, or linear extrapolation of the last two. */
  residualBase: ResidualBase;
  /**
   * The reference training script's model, output, windows, batch and schedule for every setting not given;
   * otherwise (false) those are chosen from the data (see `recipe.ts`).
   */
  reference: boolean;
}

/** How the weights are optimised. */
export interface OptimSettings {
  /** Total epochs of the run (a resumed run continues up to this). */
  epochs: number;
  /** Adam learning rate: the peak of `cosine`, the start of `exponential`. */
  learningRate: number;
  /** The learning-rate schedule (see `schedule.ts`). */
  lrSchedule: LrSchedule;
  /** `cosine`: warm-up steps, as a share of the run's steps. */
  lrWarmup: number;
  /** `cosine`: the final rate, as a share of the peak. */
  lrFinal: number;
  /** `exponential`: decay factor, applied every `lrSchedulerInterval` epochs. */
  lrGamma: number;
  /** Epochs between learning-rate decays. */
  lrSchedulerInterval: number;
  /** Clip the global gradient norm to this value (undefined: off). */
  gradClipNorm?: number;
  /** Windows per forward/backward pass (undefined: sized to memory); gradients are accumulated. */
  microBatch?: number;
  /** Added to the relative L2 loss's denominator (0: the reference). */
  lossEps: number;
  /** Stop after this many epochs without a better validation loss (undefined: off). */
  earlyStoppingPatience?: number;
  /**
   * Seconds of training to plan the run for: the epochs that fit at the measured step times, with the schedule
   * annealed at their end (undefined: `epochs`).
   */
  timeBudget?: number;
}

/** Where a run lives, how often it saves, and how it computes. */
export interface RunSettings {
  /** Folder of run folders. */
  resultsDir: string;
  /** Run folder name (undefined: `gino_YYYYMMDD_HHMMSS`). */
  runName?: string;
  /** Where checkpoints go (undefined: `<run>/checkpoints`). */
  checkpointDir?: string;
  /** Write `checkpoint_epoch_NNNN` every this many epochs. */
  saveCheckpointEvery: number;
  /** Stop (resumably) before this many seconds of wall time have passed (undefined: no limit). */
  timeLimit?: number;
  /**
   * Under MPI: seconds a collective waits for the other ranks before the job stops resumably, naming the rank that
   * does not answer (0: waits for ever; undefined: automatic, from the measured step times).
   */
  collectiveTimeout?: number;
  /** Compute backend. */
  backend: BackendName;
  /**
   * On the GPU engine, read the training losses back every this many steps (undefined: about once a second);
   * the steps in between wait for nothing.
   */
  logEvery?: number;
}

/** Every setting of a training run. */
export interface TrainSettings {
  /** Which data, windows and batches. */
  data: DataSettings;
  /** Which model. */
  model: ModelSettings;
  /** How to optimise. */
  optim: OptimSettings;
  /** Where and how to run. */
  run: RunSettings;
}

/** A setting's place in {@linkcode TrainSettings}: group and field, e.g. `["model", "gnoRadius"]`. */
export type SettingPath = {
  [G in keyof TrainSettings]: [G, keyof TrainSettings[G] & string];
}[keyof TrainSettings];

/**
 * What a resume may do with a setting: `fixed` (model and windows: refused), `data` (needs `--force-resume`),
 * `free` (run control, e.g. `--epochs`).
 */
export type ResumeRule = "fixed" | "data" | "free";

/** Declaration of one setting: its flag and where it goes. */
export interface SettingSpec extends FlagSpec {
  /** Where the value goes. */
  path: SettingPath;
  /** What a resume may do with it. */
  resume: ResumeRule;
  /** Turns the flag's value into the setting's (default: as is). */
  to?: (v: never) => unknown;
}

/** Parses a duration: `23h30m`, `1d2h`, `90m`, `45s`, or plain seconds. Returns seconds, or undefined. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(t);
  if (!m || t === "") return undefined;
  const [, d, h, mi, s] = m.map((v) => (v === undefined ? 0 : Number(v)));
  return d * 86400 + h * 3600 + mi * 60 + s;
}

/** The three values of a per-axis setting given as `G` or `Gx,Gy,Gz`. */
export function perAxisValues(v: number[]): [number, number, number] {
  return v.length === 1 ? [v[0], v[0], v[0]] : [v[0], v[1], v[2]];
}

const inOpen01 = (v: number) =>
  v > 0 && v < 1
    ? undefined
    : `must be between 0 and 1 (exclusive: validation needs some steps, training the rest), got ${v}`;
const knownCols = (v: string[]) =>
  v.length === 0
    ? "give at least one column"
    : v.every((c) => (OBS_COLUMNS as readonly string[]).includes(c))
    ? undefined
    : `unknown column in '${v.join(",")}' (choose from: ${OBS_COLUMNS.join(", ")})`;
const nonEmpty = (v: string) => (v.trim() === "" ? "must not be empty" : undefined);
const oneOf = (...xs: string[]) => (v: string) =>
  xs.includes(v) ? undefined : `expected ${xs.slice(0, -1).join(", ")} or ${xs.at(-1)}, got '${v}'`;

/** Checks a `--backend` value. */
export const backendCheck: (v: string) => string | undefined = oneOf(
  "auto",
  "tensorflow",
  "webgpu",
  "wasm",
  "cpu",
);

const durationCheck = (v: string) => {
  const d = parseDuration(v);
  return d === undefined || d <= 0
    ? `expected a duration above 0 like 23h30m, 90m or 3600, got '${v}'`
    : undefined;
};

/** Every setting, once: flag, type, default, help, check, where it goes and what a resume may do with it. */
export const SETTING_SPECS: readonly SettingSpec[] = [
  // ---- data ----
  {
    name: "base-data-dir",
    type: "string",
    help: "data folder holding the raw and patch subfolders (default: built-in demo data)",
    path: ["data", "baseDataDir"],
    resume: "data",
  },
  {
    name: "raw-data-subdir",
    type: "string",
    default: "all",
    help: "raw CSV subfolder",
    path: ["data", "rawDataSubdir"],
    resume: "free",
  },
  {
    name: "patch-data-subdir",
    type: "string",
    default: "filter_patch",
    help: "patch subfolder",
    path: ["data", "patchDataSubdir"],
    resume: "data",
  },
  {
    name: "target-cols",
    type: "list",
    default: ["mass_concentration"],
    aliases: ["target-col"],
    help: "target column(s): mass_concentration, head, pressure",
    check: knownCols,
    path: ["data", "targetCols"],
    resume: "fixed",
  },
  {
    name: "input-window-size",
    type: "int",
    default: 10,
    help: "input steps T_in",
    check: positiveInt,
    path: ["data", "inputWindow"],
    resume: "fixed",
  },
  {
    name: "output-window-size",
    type: "int",
    default: 10,
    help: "output steps T_out",
    check: positiveInt,
    path: ["data", "outputWindow"],
    resume: "fixed",
  },
  {
    name: "window-stride",
    type: "int",
    default: 1,
    help: "steps between window starts",
    check: positiveInt,
    path: ["data", "windowStride"],
    resume: "data",
  },
  {
    name: "batch-size",
    type: "int",
    default: 32,
    help: "windows per batch (all of one patch)",
    check: positiveInt,
    path: ["data", "batchSize"],
    resume: "data",
  },
  {
    name: "val-ratio",
    type: "number",
    default: 0.3,
    help: "share of each patch's steps held out for validation",
    check: inOpen01,
    path: ["data", "valRatio"],
    resume: "data",
  },
  {
    name: "seed",
    type: "int",
    default: 42,
    help: "seed of every random choice",
    path: ["data", "seed"],
    resume: "data",
  },
  {
    name: "shuffle-within-batches",
    type: "boolean",
    default: true,
    help: "re-form each patch's batches every epoch",
    path: ["data", "shuffleWithinBatches"],
    resume: "data",
  },
  {
    name: "shuffle-patches",
    type: "boolean",
    default: true,
    help: "shuffle the order of batches every epoch",
    path: ["data", "shufflePatches"],
    resume: "data",
  },
  {
    name: "nan-policy",
    type: "string",
    default: "fail",
    help:
      "NaN/Inf in the data: fail, or drop the affected points (from every step: a patch's geometry is shared by its windows)",
    check: oneOf("fail", "drop"),
    path: ["data", "nanPolicy"],
    resume: "data",
  },
  // ---- model ----
  {
    name: "gno-radius",
    type: "number",
    default: 0.1,
    help: "radius of both GNOs, in standardised coordinate units",
    check: positive,
    path: ["model", "gnoRadius"],
    resume: "fixed",
  },
  {
    name: "latent-grid",
    type: "intlist",
    default: [32],
    help: "latent grid points per axis: G or Gx,Gy,Gz",
    check: perAxis(2),
    path: ["model", "latentGrid"],
    resume: "fixed",
    to: perAxisValues,
  },
  {
    name: "fno-modes",
    type: "intlist",
    default: [8],
    help: "FNO modes: M or Mx,My,Mz",
    check: perAxis(1),
    path: ["model", "fnoModes"],
    resume: "fixed",
    to: perAxisValues,
  },
  {
    name: "fno-hidden-channels",
    type: "int",
    default: 64,
    help: "FNO width",
    check: positiveInt,
    path: ["model", "fnoHiddenChannels"],
    resume: "fixed",
  },
  {
    name: "fno-layers",
    type: "int",
    default: 4,
    help: "FNO layers",
    check: positiveInt,
    path: ["model", "fnoLayers"],
    resume: "fixed",
  },
  {
    name: "lifting-channels",
    type: "int",
    default: 64,
    help: "hidden width of the lifting MLP",
    check: positiveInt,
    path: ["model", "liftingChannels"],
    resume: "fixed",
  },
  {
    name: "gno-mlp-layers",
    type: "intlist",
    default: [32, 64, 32],
    help: "hidden widths of the GNO kernel MLPs",
    check: widths,
    path: ["model", "gnoMlpLayers"],
    resume: "fixed",
  },
  {
    name: "residual",
    type: "boolean",
    default: false,
    help:
      "predict the correction to a simple forecast, see --residual-base (an option beyond the reference GINO)",
    path: ["model", "residual"],
    resume: "fixed",
  },
  {
    name: "residual-base",
    type: "string",
    default: "last",
    help:
      "with --residual, the forecast corrected: last (the last input step), linear (extrapolated from the " +
      "last two) or fitted (a linear map of the input window fitted to the training windows)",
    check: oneOf("last", "linear", "fitted"),
    path: ["model", "residualBase"],
    resume: "fixed",
  },
  {
    name: "reference",
    type: "boolean",
    default: false,
    help:
      "the reference training script's model, plain output, windows 10/10, validation 0.3, batch 32 and " +
      "exponential schedule for every setting not given (without it these are chosen from the data; the log " +
      "says what and why)",
    path: ["model", "reference"],
    resume: "fixed",
  },
  {
    name: "projection-channel-ratio",
    type: "int",
    default: 2,
    help: "projection hidden width = ratio x FNO width",
    check: positiveInt,
    path: ["model", "projectionChannelRatio"],
    resume: "fixed",
  },
  // ---- optimisation ----
  {
    name: "epochs",
    type: "int",
    default: 5,
    help: "total epochs of the run (a resumed run continues up to this)",
    check: positiveInt,
    path: ["optim", "epochs"],
    resume: "free",
  },
  {
    name: "learning-rate",
    type: "number",
    default: 1e-3,
    help: "Adam learning rate (cosine: the peak; exponential: the start)",
    check: positive,
    path: ["optim", "learningRate"],
    resume: "free",
  },
  {
    name: "lr-schedule",
    type: "string",
    default: "cosine",
    help: "cosine (warm-up, then down to --lr-final over the run's steps), exponential (x --lr-gamma every " +
      "--lr-scheduler-interval epochs: the reference's) or constant",
    check: oneOf(...LR_SCHEDULES),
    path: ["optim", "lrSchedule"],
    resume: "free",
  },
  {
    name: "lr-warmup",
    type: "number",
    default: 0.05,
    help: "cosine: warm-up steps as a share of the run's steps",
    check: (v: number) => (v >= 0 && v < 1 ? undefined : `must be at least 0 and below 1, got ${v}`),
    path: ["optim", "lrWarmup"],
    resume: "free",
  },
  {
    name: "lr-final",
    type: "number",
    default: 0.01,
    help: "cosine: the final learning rate as a share of the peak",
    check: (v: number) => (v >= 0 && v <= 1 ? undefined : `must be between 0 and 1, got ${v}`),
    path: ["optim", "lrFinal"],
    resume: "free",
  },
  {
    name: "lr-gamma",
    type: "number",
    default: 0.95,
    help: "exponential: learning-rate decay factor",
    check: positive,
    path: ["optim", "lrGamma"],
    resume: "free",
  },
  {
    name: "lr-scheduler-interval",
    type: "int",
    default: 5,
    help: "exponential: decay the learning rate every this many epochs",
    check: positiveInt,
    path: ["optim", "lrSchedulerInterval"],
    resume: "free",
  },
  {
    name: "grad-clip-norm",
    type: "number",
    help: "clip the global gradient norm to this value (off by default)",
    check: positive,
    path: ["optim", "gradClipNorm"],
    resume: "free",
  },
  {
    name: "micro-batch",
    type: "int",
    help: "windows per forward/backward pass; gradients are accumulated (default: sized to memory)",
    check: positiveInt,
    path: ["optim", "microBatch"],
    resume: "free",
  },
  {
    name: "loss-eps",
    type: "number",
    default: 0,
    help: "epsilon added to the relative L2 loss's denominator (0 = reference)",
    check: nonNegative,
    path: ["optim", "lossEps"],
    resume: "free",
  },
  {
    name: "time-budget",
    type: "string",
    help:
      "plan the run for this much training time, e.g. 5m: as many epochs as the first steps' times say fit, " +
      "the learning rate annealed at their end (it replaces --epochs; a resumed run may raise --epochs to go on)",
    check: (v: string) => durationCheck(v),
    path: ["optim", "timeBudget"],
    resume: "free",
    to: (v: string) => parseDuration(v),
  },
  {
    name: "early-stopping-patience",
    type: "int",
    help: "stop after this many epochs without a better validation loss (off by default)",
    check: positiveInt,
    path: ["optim", "earlyStoppingPatience"],
    resume: "free",
  },
  // ---- run control ----
  {
    name: "results-dir",
    type: "string",
    default: "results",
    help: "folder of run folders",
    check: nonEmpty,
    path: ["run", "resultsDir"],
    resume: "free",
  },
  {
    name: "run-name",
    type: "string",
    help: "run folder name (default gino_YYYYMMDD_HHMMSS)",
    check: (v: string) =>
      /^[^/\\]+$/.test(v) && !v.startsWith(".")
        ? undefined
        : `must be a plain folder name (no '/', not starting with '.'), got '${v}'`,
    path: ["run", "runName"],
    resume: "free",
  },
  {
    name: "checkpoint-dir",
    type: "string",
    help: "where checkpoints go (default <run>/checkpoints)",
    check: nonEmpty,
    path: ["run", "checkpointDir"],
    resume: "free",
  },
  {
    name: "save-checkpoint-every",
    type: "int",
    default: 5,
    help: "write checkpoint_epoch_NNNN every this many epochs",
    check: positiveInt,
    path: ["run", "saveCheckpointEvery"],
    resume: "free",
  },
  {
    name: "time-limit",
    type: "string",
    help: "stop (resumably) before this much wall time has passed, e.g. 23h30m",
    check: durationCheck,
    path: ["run", "timeLimit"],
    resume: "free",
    to: (v: string) => parseDuration(v),
  },
  {
    name: "collective-timeout",
    type: "string",
    help:
      "MPI: how long a collective waits for a rank that does not answer before the job stops resumably (exit 3), " +
      "naming it, e.g. 10m; off: for ever [default: auto: 10x the longest step or wait so far, at least 5 minutes]",
    check: (v: string) => v === "auto" || v === "off" || v === "0" ? undefined : durationCheck(v),
    path: ["run", "collectiveTimeout"],
    resume: "free",
    to: (v: string) => (v === "auto" ? undefined : v === "off" ? 0 : parseDuration(v)),
  },
  {
    name: "backend",
    type: "string",
    default: "auto",
    help:
      "auto, tensorflow, webgpu, wasm or cpu (auto: tensorflow if installed, else a GPU through WebGPU, else wasm)",
    check: backendCheck,
    path: ["run", "backend"],
    resume: "free",
  },
  {
    name: "log-every",
    type: "int",
    help:
      "webgpu: read the training losses back (progress bar, stop checks) every this many steps; the steps " +
      "in between queue on the GPU without waiting (default: about once a second)",
    check: positiveInt,
    path: ["run", "logEvery"],
    resume: "free",
  },
];

/** The settings a new run chooses from its data (`recipe.ts`) unless given; `--reference` gives the value shown. */
const CHOSEN_FROM_DATA = [
  "input-window-size",
  "output-window-size",
  "val-ratio",
  "batch-size",
  "epochs",
  "gno-radius",
  "latent-grid",
  "fno-modes",
  "fno-hidden-channels",
  "fno-layers",
  "lifting-channels",
  "gno-mlp-layers",
  "projection-channel-ratio",
  "residual",
  "residual-base",
];
for (const spec of SETTING_SPECS) {
  if (CHOSEN_FROM_DATA.includes(spec.name)) {
    spec.defaultNote = `chosen from the data; --reference: ${flagValue(spec.default)}`;
  } else if (spec.name === "lr-schedule") spec.defaultNote = "cosine; --reference: exponential";
}

/** The specs of one group (the dry run shows the data flags, for example). */
export function specsOf(group: keyof TrainSettings): SettingSpec[] {
  return SETTING_SPECS.filter((s) => s.path[0] === group);
}

/** The spec of a setting, by flag name. */
export function specOfFlag(flag: string): SettingSpec | undefined {
  return SETTING_SPECS.find((s) => s.name === flag || s.aliases?.includes(flag));
}

/** `model.gnoRadius` */
export const pathKey = (p: SettingPath): string => `${p[0]}.${p[1]}`;

function put(s: TrainSettings, spec: SettingSpec, raw: unknown): void {
  const v = raw === undefined ? undefined : spec.to ? spec.to(raw as never) : raw;
  (s[spec.path[0]] as unknown as Record<string, unknown>)[spec.path[1]] = v;
}

function get(s: TrainSettings, spec: SettingSpec): unknown {
  return (s[spec.path[0]] as unknown as Record<string, unknown>)[spec.path[1]];
}

/** The defaults of every setting. */
export function defaultSettings(): TrainSettings {
  const s = { data: {}, model: {}, optim: {}, run: {} } as TrainSettings;
  for (const spec of SETTING_SPECS) {
    put(s, spec, spec.default === undefined ? undefined : structuredClone(spec.default));
  }
  return s;
}

/**
 * Settings from flag values by flag name (parsed flags, or a `--config` file's keys): the defaults with the given
 * ones on top. Returns them and the settings given (as `group.field` keys).
 */
export function settingsFromFlags(values: Record<string, unknown>, given: Iterable<string>): {
  settings: TrainSettings;
  explicit: Set<string>;
} {
  const settings = defaultSettings();
  const explicit = new Set<string>();
  for (const spec of SETTING_SPECS) {
    if (spec.name in values) put(settings, spec, values[spec.name]);
  }
  for (const flag of given) {
    const spec = specOfFlag(flag);
    if (spec) explicit.add(pathKey(spec.path));
  }
  return { settings, explicit };
}

/**
 * Settings from a JSON object whose keys are flag names (kebab- or snake_case), e.g. a `--config` file: each value
 * checked like a command-line value, the defaults for the rest. Unknown keys are an error naming them.
 */
export function settingsFromConfig(o: Record<string, unknown>, what = "config"): {
  settings: TrainSettings;
  explicit: Set<string>;
} {
  const values: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    const spec = specOfFlag(k.replaceAll("_", "-"));
    if (!spec) throw new FlagError(`${what} key '${k}' is not a known setting (see deno task train --help)`);
    const value = valueFromJson(spec, v, k);
    const msg = spec.check?.(value as never);
    if (msg) throw new FlagError(`${what} key '${k}': ${msg}`);
    values[spec.name] = value;
  }
  return settingsFromFlags(values, Object.keys(values));
}

/**
 * Settings as a run saved them: the typed form (`{data, model, optim, run}`), or the first format, whose keys are
 * flag names (`{"gno-radius": 0.1, "latent-grid": [8], ...}`). Missing settings take their defaults, but for the
 * learning-rate schedule: a run saved without one had the exponential schedule.
 */
export function settingsFromSaved(saved: unknown): TrainSettings {
  const s = defaultSettings();
  if (!saved || typeof saved !== "object") return s;
  const o = saved as Record<string, unknown>;
  // runs saved before there was a choice of schedule had the exponential one (and keep it when resumed)
  s.optim.lrSchedule = "exponential";
  if (o.data && o.model && o.optim && o.run) {
    for (const spec of SETTING_SPECS) {
      const group = o[spec.path[0]] as Record<string, unknown>;
      if (spec.path[1] in group) {
        (s[spec.path[0]] as unknown as Record<string, unknown>)[spec.path[1]] = group[spec.path[1]];
      }
    }
    return s;
  }
  for (const spec of SETTING_SPECS) {
    if (spec.name in o && o[spec.name] !== undefined && o[spec.name] !== null) put(s, spec, o[spec.name]);
  }
  return s;
}

/** Copies the settings named in `keys` (`group.field`) from `from` into `to`. */
export function overlay(to: TrainSettings, from: TrainSettings, keys: Iterable<string>): void {
  for (const key of keys) {
    const spec = SETTING_SPECS.find((s) => pathKey(s.path) === key);
    if (spec) put(to, { ...spec, to: undefined }, structuredClone(get(from, spec)));
  }
}

/** The settings in `keys` whose values differ between two settings, with their specs. */
export function differences(
  a: TrainSettings,
  b: TrainSettings,
  keys: Iterable<string>,
): { spec: SettingSpec; a: unknown; b: unknown }[] {
  const out: { spec: SettingSpec; a: unknown; b: unknown }[] = [];
  for (const key of keys) {
    const spec = SETTING_SPECS.find((s) => pathKey(s.path) === key);
    if (!spec) continue;
    const [va, vb] = [get(a, spec), get(b, spec)];
    if (JSON.stringify(va) !== JSON.stringify(vb)) out.push({ spec, a: va, b: vb });
  }
  return out;
}

/** A setting's value as a flag value (`8,8,8`, `23h30m` as seconds), for messages. */
export function flagValue(v: unknown): string {
  return Array.isArray(v) ? v.join(",") : String(v);
}

/**
 * Checks every setting (its flag's own check) and what single flags cannot: settings that must fit together.
 * Throws a {@linkcode FlagError} naming the flags and the fix. Touches no file.
 */
export function validateSettings(s: TrainSettings): void {
  for (const spec of SETTING_SPECS) {
    const v = get(s, spec);
    if (v === undefined || !spec.check) continue;
    const raw = spec.path[1] === "timeLimit" || spec.path[1] === "timeBudget" ||
        spec.path[1] === "collectiveTimeout"
      ? `${v}`
      : v;
    const msg = spec.check(raw as never);
    if (msg) throw new FlagError(`--${spec.name}: ${msg}`);
  }
  const { latentGrid: grid, fnoModes: modes } = s.model;
  const axes = ["x", "y", "z"];
  for (let a = 0; a < 3; a++) {
    // x and y keep `m` signed frequencies of a complex axis; z (the real FFT axis) keeps floor(m / 2) + 1
    const fits = a < 2 ? modes[a] <= grid[a] : Math.floor(modes[a] / 2) <= Math.floor(grid[a] / 2);
    if (!fits) {
      throw new FlagError(
        `--fno-modes ${flagValue(shortAxes(modes))}: ${modes[a]} modes along ${
          axes[a]
        } need a latent grid of at ` +
          `least ${modes[a]} points there, but --latent-grid is ${
            flagValue(shortAxes(grid))
          }; lower --fno-modes ` +
          `or raise --latent-grid`,
      );
    }
  }
  const micro = s.optim.microBatch;
  if (micro !== undefined && micro > s.data.batchSize) {
    throw new FlagError(
      `--micro-batch ${micro} is larger than --batch-size ${s.data.batchSize}; give at most the batch size`,
    );
  }
}

/** `[8, 8, 8]` as `[8]` (how the flag is usually written). */
function shortAxes(v: number[]): number[] {
  return v.every((x) => x === v[0]) ? [v[0]] : v;
}

/** The GINO constructor arguments (the reference's keyword arguments) for a run's settings. */
export function ginoConfigFor(s: TrainSettings): Partial<GinoConfig> {
  const cols = s.data.targetCols.length, m = s.model;
  return {
    in_gno_coord_dim: 3,
    out_gno_coord_dim: 3,
    in_gno_radius: m.gnoRadius,
    out_gno_radius: m.gnoRadius,
    in_gno_out_channels: s.data.inputWindow * cols,
    out_channels: s.data.outputWindow * cols,
    in_gno_channel_mlp_layers: [...m.gnoMlpLayers],
    out_gno_channel_mlp_layers: [...m.gnoMlpLayers],
    fno_n_layers: m.fnoLayers,
    fno_n_modes: [...m.fnoModes],
    fno_hidden_channels: m.fnoHiddenChannels,
    lifting_channels: m.liftingChannels,
    projection_channel_ratio: m.projectionChannelRatio,
  };
}
