/**
 * The settings of a training run: flag declarations (shared by `train.ts` and the tools that load the same data)
 * and their translation into typed options.
 *
 * @module
 */

import type { FlagSpec, ParsedFlags } from "../cli/flags.ts";
import { FlagError, nonNegative, perAxis, positive, positiveInt, widths } from "../cli/flags.ts";
import { OBS_COLUMNS } from "../data/dataset.ts";
import type { GinoConfig } from "../model/config.ts";

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

/** Flags that choose and cut the data (the dry run's flags). */
export const DATA_FLAGS: FlagSpec[] = [
  {
    name: "base-data-dir",
    type: "string",
    help: "data folder holding the raw and patch subfolders (default: built-in demo data)",
  },
  { name: "raw-data-subdir", type: "string", default: "all", help: "raw CSV subfolder" },
  { name: "patch-data-subdir", type: "string", default: "filter_patch", help: "patch subfolder" },
  {
    name: "target-cols",
    type: "list",
    default: ["mass_concentration"],
    aliases: ["target-col"],
    help: "target column(s): mass_concentration, head, pressure",
    check: knownCols,
  },
  { name: "input-window-size", type: "int", default: 10, help: "input steps T_in", check: positiveInt },
  { name: "output-window-size", type: "int", default: 10, help: "output steps T_out", check: positiveInt },
  { name: "window-stride", type: "int", default: 1, help: "steps between window starts", check: positiveInt },
  {
    name: "batch-size",
    type: "int",
    default: 32,
    help: "windows per batch (all of one patch)",
    check: positiveInt,
  },
  {
    name: "val-ratio",
    type: "number",
    default: 0.3,
    help: "share of each patch's steps held out for validation",
    check: inOpen01,
  },
  { name: "seed", type: "int", default: 42, help: "seed of every random choice" },
  {
    name: "shuffle-within-batches",
    type: "boolean",
    default: true,
    help: "re-form each patch's batches every epoch",
  },
  {
    name: "shuffle-patches",
    type: "boolean",
    default: true,
    help: "shuffle the order of batches every epoch",
  },
  {
    name: "nan-policy",
    type: "string",
    default: "fail",
    help: "NaN/Inf in the data: fail, or drop the affected points",
    check: (v: string) => (v === "fail" || v === "drop" ? undefined : `expected fail or drop, got '${v}'`),
  },
];

const timeLimitCheck = (v: string) => {
  const d = parseDuration(v);
  return d === undefined || d <= 0
    ? `expected a duration above 0 like 23h30m, 90m or 3600, got '${v}'`
    : undefined;
};
const nonEmpty = (v: string) => (v.trim() === "" ? "must not be empty" : undefined);

/** Flags of the model (the reference training script's names). */
export const MODEL_FLAGS: FlagSpec[] = [
  {
    name: "gno-radius",
    type: "number",
    default: 0.1,
    help: "radius of both GNOs, in standardised coordinate units",
    check: positive,
  },
  {
    name: "latent-grid",
    type: "intlist",
    default: [32],
    help: "latent grid points per axis: G or Gx,Gy,Gz",
    check: perAxis(2),
  },
  { name: "fno-modes", type: "intlist", default: [8], help: "FNO modes: M or Mx,My,Mz", check: perAxis(1) },
  { name: "fno-hidden-channels", type: "int", default: 64, help: "FNO width", check: positiveInt },
  { name: "fno-layers", type: "int", default: 4, help: "FNO layers", check: positiveInt },
  {
    name: "lifting-channels",
    type: "int",
    default: 64,
    help: "hidden width of the lifting MLP",
    check: positiveInt,
  },
  {
    name: "gno-mlp-layers",
    type: "intlist",
    default: [32, 64, 32],
    help: "hidden widths of the GNO kernel MLPs",
    check: widths,
  },
  {
    name: "residual",
    type: "boolean",
    default: false,
    help: "predict the change from the last input step (an option beyond the reference GINO)",
  },
  {
    name: "projection-channel-ratio",
    type: "int",
    default: 2,
    help: "projection hidden width = ratio x FNO width",
    check: positiveInt,
  },
];

/** Checks a `--backend` value. */
export const backendCheck = (v: string): string | undefined =>
  ["auto", "tensorflow", "wasm", "cpu"].includes(v)
    ? undefined
    : `expected auto, tensorflow, wasm or cpu, got '${v}'`;

/** Flags of the training run. */
export const TRAIN_FLAGS: FlagSpec[] = [
  {
    name: "epochs",
    type: "int",
    default: 5,
    help: "total epochs of the run (a resumed run continues up to this)",
    check: positiveInt,
  },
  { name: "learning-rate", type: "number", default: 1e-3, help: "Adam learning rate", check: positive },
  { name: "lr-gamma", type: "number", default: 0.95, help: "learning-rate decay factor", check: positive },
  {
    name: "lr-scheduler-interval",
    type: "int",
    default: 5,
    help: "decay the learning rate every this many epochs",
    check: positiveInt,
  },
  {
    name: "grad-clip-norm",
    type: "number",
    help: "clip the global gradient norm to this value (off by default)",
    check: positive,
  },
  {
    name: "micro-batch",
    type: "int",
    help: "windows per forward/backward pass; gradients are accumulated (default: sized to memory)",
    check: positiveInt,
  },
  {
    name: "loss-eps",
    type: "number",
    default: 0,
    help: "epsilon added to the relative L2 loss's denominator (0 = reference)",
    check: nonNegative,
  },
  { name: "results-dir", type: "string", default: "results", help: "folder of run folders", check: nonEmpty },
  {
    name: "run-name",
    type: "string",
    help: "run folder name (default gino_YYYYMMDD_HHMMSS)",
    check: (v: string) =>
      /^[^/\\]+$/.test(v) && v !== "." && v !== ".." && !v.startsWith(".")
        ? undefined
        : `must be a plain folder name (no '/', not starting with '.'), got '${v}'`,
  },
  {
    name: "resume-from",
    type: "string",
    help: "checkpoint to resume, or 'auto' (newest valid checkpoint of the newest run)",
  },
  {
    name: "force-resume",
    type: "boolean",
    default: false,
    help: "resume although the data differ from the checkpoint's",
  },
  {
    name: "checkpoint-dir",
    type: "string",
    help: "where checkpoints go (default <run>/checkpoints)",
    check: nonEmpty,
  },
  {
    name: "save-checkpoint-every",
    type: "int",
    default: 5,
    help: "write checkpoint_epoch_NNNN every this many epochs",
    check: positiveInt,
  },
  {
    name: "early-stopping-patience",
    type: "int",
    help: "stop after this many epochs without a better validation loss (off by default)",
    check: positiveInt,
  },
  {
    name: "time-limit",
    type: "string",
    help: "stop (resumably) before this much wall time has passed, e.g. 23h30m",
    check: timeLimitCheck,
  },
  {
    name: "backend",
    type: "string",
    default: "auto",
    help: "auto, tensorflow, wasm or cpu",
    check: backendCheck,
  },
];

/** Parses a duration: `23h30m`, `1d2h`, `90m`, `45s`, or plain seconds. Returns seconds, or undefined. */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(t);
  if (!m || t === "") return undefined;
  const [, d, h, mi, s] = m.map((v) => (v === undefined ? 0 : Number(v)));
  return d * 86400 + h * 3600 + mi * 60 + s;
}

/** Typed data settings. */
export interface DataSettings {
  baseDataDir?: string;
  rawDataSubdir: string;
  patchDataSubdir: string;
  targetCols: string[];
  inputWindow: number;
  outputWindow: number;
  stride: number;
  batchSize: number;
  valRatio: number;
  seed: number;
  shuffleWithinBatches: boolean;
  shufflePatches: boolean;
  nanPolicy: "fail" | "drop";
}

/** Reads the data settings out of parsed flags. */
export function dataSettings(f: ParsedFlags): DataSettings {
  return {
    baseDataDir: f["base-data-dir"] as string | undefined,
    rawDataSubdir: f["raw-data-subdir"] as string,
    patchDataSubdir: f["patch-data-subdir"] as string,
    targetCols: f["target-cols"] as string[],
    inputWindow: f["input-window-size"] as number,
    outputWindow: f["output-window-size"] as number,
    stride: f["window-stride"] as number,
    batchSize: f["batch-size"] as number,
    valRatio: f["val-ratio"] as number,
    seed: f["seed"] as number,
    shuffleWithinBatches: f["shuffle-within-batches"] as boolean,
    shufflePatches: f["shuffle-patches"] as boolean,
    nanPolicy: f["nan-policy"] as "fail" | "drop",
  };
}

/** The three values of a per-axis setting given as `G` or `Gx,Gy,Gz`. */
export function perAxisValues(v: number[]): [number, number, number] {
  return v.length === 1 ? [v[0], v[0], v[0]] : [v[0], v[1], v[2]];
}

/**
 * Checks what single flags cannot: settings that must fit together. Throws a {@linkcode FlagError} naming the flags
 * and the fix. Runs before any data is read or anything written.
 */
export function validateTrainSettings(s: Record<string, unknown>): void {
  const grid = perAxisValues(s["latent-grid"] as number[]);
  const modes = perAxisValues(s["fno-modes"] as number[]);
  const axes = ["x", "y", "z"];
  for (let a = 0; a < 3; a++) {
    // x and y keep `m` signed frequencies of a complex axis; z (the real FFT axis) keeps floor(m / 2) + 1
    const fits = a < 2 ? modes[a] <= grid[a] : Math.floor(modes[a] / 2) <= Math.floor(grid[a] / 2);
    if (!fits) {
      throw new FlagError(
        `--fno-modes ${(s["fno-modes"] as number[]).join(",")}: ${modes[a]} modes along ${
          axes[a]
        } need a latent ` +
          `grid of at least ${modes[a]} points there, but --latent-grid is ${
            (s["latent-grid"] as number[]).join(",")
          }` +
          `; lower --fno-modes or raise --latent-grid`,
      );
    }
  }
  const micro = s["micro-batch"] as number | undefined;
  if (micro !== undefined && micro > (s["batch-size"] as number)) {
    throw new FlagError(
      `--micro-batch ${micro} is larger than --batch-size ${s["batch-size"]}; give at most the batch size`,
    );
  }
}

/** The latent grid of a run's settings, three values. */
export function gridOf(s: Record<string, unknown>): number[] {
  return perAxisValues(s["latent-grid"] as number[]);
}

/** The GINO constructor arguments for a run's settings. */
export function ginoConfigFor(s: Record<string, unknown>): Partial<GinoConfig> {
  const cols = (s["target-cols"] as string[]).length;
  return {
    in_gno_coord_dim: 3,
    out_gno_coord_dim: 3,
    in_gno_radius: s["gno-radius"] as number,
    out_gno_radius: s["gno-radius"] as number,
    in_gno_out_channels: (s["input-window-size"] as number) * cols,
    out_channels: (s["output-window-size"] as number) * cols,
    in_gno_channel_mlp_layers: [...(s["gno-mlp-layers"] as number[])],
    out_gno_channel_mlp_layers: [...(s["gno-mlp-layers"] as number[])],
    fno_n_layers: s["fno-layers"] as number,
    fno_n_modes: perAxisValues(s["fno-modes"] as number[]),
    fno_hidden_channels: s["fno-hidden-channels"] as number,
    lifting_channels: s["lifting-channels"] as number,
    projection_channel_ratio: s["projection-channel-ratio"] as number,
  };
}
