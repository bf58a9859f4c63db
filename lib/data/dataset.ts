/**
 * The patch dataset: a folder of `patch_NNNN/` folders (core and ghost points of one spatial patch, their
 * time series), windows over time, and the normalisation statistics.
 *
 * Layout in memory: per patch one Float32Array of standardised values `[C, N, T]` (C target columns, N points with
 * the core points first, T time steps) and one of standardised coordinates `[N, 3]`. A sample (window) is a pair
 * (patch, start step): nothing is copied until a batch is assembled into reusable buffers (see `batch.ts`).
 *
 * @module
 */

import { DataError } from "./data_error.ts";

export { DataError };
import { readPatch } from "./patch_reader.ts";
import type { RawPatch } from "./patch_reader.ts";
import { computeNormalization, standardize } from "./normalization.ts";
import { fingerprint } from "./fingerprint.ts";

/** The observation columns of the patch format, in the order of the last axis of `core_obs.npy`. */
export const OBS_COLUMNS = ["mass_concentration", "head", "pressure"] as const;

/** One of {@linkcode OBS_COLUMNS}. */
export type ObsColumn = typeof OBS_COLUMNS[number];

/** Normalisation statistics: per coordinate axis and per target column, mean and standard deviation (ddof = 1). */
export interface Normalization {
  /** Mean of X, Y, Z. */
  coordMean: number[];
  /** Standard deviation of X, Y, Z. */
  coordStd: number[];
  /** Target columns, in channel order. */
  columns: string[];
  /** Mean per target column. */
  mean: number[];
  /** Standard deviation per target column. */
  std: number[];
  /** What the statistics were computed from. */
  source?: string;
}

/** One loaded patch. */
export interface Patch {
  /** Patch id: the number after the last `_` in the folder name. */
  id: number;
  /** Folder name, e.g. `patch_0003`. */
  name: string;
  /** Core points (the first `nCore` of the point cloud). */
  nCore: number;
  /** Ghost points (after the core points). */
  nGhost: number;
  /** All points, `nCore + nGhost`. */
  n: number;
  /** Time steps. */
  steps: number;
  /** Steps in the training part, `floor(steps * (1 - valRatio))`; the validation part is the rest. */
  trainSteps: number;
  /** Standardised coordinates `[n, 3]`, core first. */
  coords: Float32Array;
  /** Standardised values `[C, n, steps]`. */
  values: Float32Array;
  /** Points dropped because of NaN/Inf values (with `nanPolicy: "drop"`). */
  droppedPoints: number;
}

/** How windows are cut. */
export interface WindowOptions {
  /** Steps fed to the model, T_in. */
  inputWindow: number;
  /** Steps predicted, T_out. */
  outputWindow: number;
  /** Step between consecutive window starts. Default 1. */
  stride?: number;
}

/** Options of {@linkcode loadPatchDataset}. */
export interface DatasetOptions extends WindowOptions {
  /** Target columns (one or several of {@linkcode OBS_COLUMNS}). */
  targetCols: string[];
  /** Share of each patch's steps used for validation. Default 0.3. */
  valRatio?: number;
  /** What to do with NaN/Inf observations: `fail` (default) or `drop` the affected points. */
  nanPolicy?: "fail" | "drop";
  /** Use these statistics instead of computing them (e.g. from a checkpoint). */
  normalization?: Normalization;
}

/** Which part of each patch's time series. */
export type Part = "train" | "val";

/** The loaded patch dataset. */
export class PatchDataset {
  /** Made by {@linkcode loadPatchDataset}. */
  constructor(
    /** The folder that was loaded. */
    readonly dir: string,
    /** Patches in folder-name order. */
    readonly patches: Patch[],
    /** Statistics used to standardise coordinates and values. */
    readonly normalization: Normalization,
    /** Options the dataset was loaded with. */
    readonly options: Required<Omit<DatasetOptions, "normalization">>,
    /** Bytes of the observation and coordinate arrays in the `.npy` files. */
    readonly rawBytes: number,
    /** Hash of the loaded data (patch names, shapes, coordinates and values): changes when the data change. */
    readonly fingerprint: string,
  ) {}

  /** Number of target columns C. */
  get channels(): number {
    return this.options.targetCols.length;
  }

  /** Number of windows of one patch in one part. */
  windowCount(patchIndex: number, part: Part): number {
    const p = this.patches[patchIndex];
    const { inputWindow, outputWindow, stride } = this.options;
    const len = part === "train" ? p.trainSteps : p.steps - p.trainSteps;
    return countWindows(len, inputWindow + outputWindow, stride);
  }

  /** Windows per patch in one part (the sampler's input). */
  windowCounts(part: Part): number[] {
    return this.patches.map((_, i) => this.windowCount(i, part));
  }

  /** First time step of window `k` of a patch in a part. */
  windowStart(patchIndex: number, part: Part, k: number): number {
    const base = part === "train" ? 0 : this.patches[patchIndex].trainSteps;
    return base + k * this.options.stride;
  }

  /** Bytes held by the loaded arrays. */
  get bytes(): number {
    return this.patches.reduce((s, p) => s + p.coords.byteLength + p.values.byteLength, 0);
  }
}

/** Number of windows of `span` steps with the given stride in a series of `len` steps. */
export function countWindows(len: number, span: number, stride = 1): number {
  return len < span ? 0 : Math.floor((len - span) / stride) + 1;
}

/** Lists the patch folders of a patch-data folder (sorted by name, as the Python pipeline does). */
export async function listPatchDirs(dir: string): Promise<string[]> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(
        `patch data folder not found: ${dir} (check --base-data-dir and --patch-data-subdir, or make it from ` +
          `raw CSV files with 'deno task prepare --base-data-dir DIR')`,
      );
    }
    if (e instanceof Deno.errors.NotADirectory) throw new DataError(`${dir} is not a folder`);
    throw e;
  }
  const names = entries
    .filter((e) => e.isDirectory && !e.name.startsWith(".") && /_\d+$/.test(e.name))
    .map((e) => e.name)
    .sort();
  if (names.length === 0) {
    throw new DataError(
      `no patch folders (patch_NNNN/ with core_coords.npy, core_obs.npy, ghost_coords.npy, ghost_obs.npy) in ${dir}`,
    );
  }
  return names;
}

/** The options of {@linkcode loadPatchDataset} with their defaults, checked; and the target columns' indices. */
function checkedOptions(options: DatasetOptions): {
  opts: Required<Omit<DatasetOptions, "normalization">>;
  colIdx: number[];
} {
  const opts = {
    targetCols: options.targetCols,
    inputWindow: options.inputWindow,
    outputWindow: options.outputWindow,
    stride: options.stride ?? 1,
    valRatio: options.valRatio ?? 0.3,
    nanPolicy: options.nanPolicy ?? "fail",
  };
  if (opts.targetCols.length === 0) throw new DataError("no target column given");
  const colIdx = opts.targetCols.map((c) => {
    const i = (OBS_COLUMNS as readonly string[]).indexOf(c);
    if (i < 0) throw new DataError(`unknown target column '${c}' (choose from: ${OBS_COLUMNS.join(", ")})`);
    return i;
  });
  if (new Set(opts.targetCols).size !== opts.targetCols.length) {
    throw new DataError(`target column given twice: ${opts.targetCols.join(",")}`);
  }
  if (!(opts.valRatio >= 0 && opts.valRatio < 1)) {
    throw new DataError(`val ratio must be in [0, 1), got ${opts.valRatio}`);
  }
  const windows = [["input window", opts.inputWindow], ["output window", opts.outputWindow], [
    "stride",
    opts.stride,
  ]];
  for (const [k, v] of windows as [string, number][]) {
    if (!Number.isInteger(v) || v < 1) throw new DataError(`${k} must be a positive integer, got ${v}`);
  }
  return { opts, colIdx };
}

/**
 * Loads a patch-data folder: validates every patch, selects the target columns, computes the normalisation
 * statistics from the training part of all patches (unless given) and standardises coordinates and values.
 *
 * Statistics: coordinates over the core points of all patches; each target column over the core points and the
 * training steps of all patches; standard deviations with ddof = 1 (as pandas).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadPatchDataset } from "./dataset.ts";
 * const ds = await loadPatchDataset("tests/fixtures/py_patches/filter_patch", {
 *   targetCols: ["mass_concentration"], inputWindow: 3, outputWindow: 2,
 * });
 * assert.ok(ds.patches.length === 3 && ds.windowCounts("train").every((c) => c > 0));
 * ```
 */
export async function loadPatchDataset(dir: string, options: DatasetOptions): Promise<PatchDataset> {
  const { opts, colIdx } = checkedOptions(options);
  await checkColumnsPresent(dir, opts.targetCols);
  // Values are kept in float32 after subtracting a per-column shift (the first value seen), so that float32 keeps
  // the precision of fields whose spread is tiny next to their mean (heads).
  const shift = new Float64Array(colIdx.length).fill(NaN);
  const raws: RawPatch[] = [];
  const nanReports: string[] = [];
  let rawBytes = 0;
  for (const name of await listPatchDirs(dir)) {
    const r = await readPatch(dir, name, colIdx, shift, opts.nanPolicy);
    raws.push(r.patch);
    rawBytes += r.bytes;
    if (r.nanReport) nanReports.push(r.nanReport);
  }
  if (nanReports.length > 0 && opts.nanPolicy === "fail") {
    throw new DataError(
      `NaN or infinite values in ${dir}:\n  ${nanReports.join("\n  ")}\n` +
        `fix the data, or drop the affected points with --nan-policy drop`,
    );
  }
  if (nanReports.length > 0) {
    console.warn(
      `warning: dropped points with NaN/Inf values, each from every step (a patch's points and their ` +
        `neighbourhoods are shared by all its windows, so a point cannot be left out at some steps only; ` +
        `to keep cells that are dry for a while, train on a time range or layers where they are wet):\n  ` +
        nanReports.join("\n  "),
    );
  }
  const trainStepsOf = (T: number) => Math.floor(T * (1 - opts.valRatio));
  const norm = options.normalization ?? computeNormalization(raws, shift, opts.targetCols, trainStepsOf, dir);
  if (norm.columns.length !== colIdx.length || norm.columns.some((c, i) => c !== opts.targetCols[i])) {
    throw new DataError(
      `the given normalisation statistics are for columns ${norm.columns.join(",")}, not ${
        opts.targetCols.join(",")
      }`,
    );
  }
  const hash = fingerprint(raws, shift, opts.targetCols); // of the raw (shifted) values, before standardising
  const patches = standardize(raws, norm, shift, trainStepsOf);
  return new PatchDataset(dir, patches, norm, opts, rawBytes, hash);
}

/**
 * Refuses target columns that the data does not hold: a patch folder prepared from MODFLOW 6 heads without a
 * concentration file lists `mass_concentration` as missing in its `patches.json`.
 */
async function checkColumnsPresent(dir: string, targetCols: readonly string[]): Promise<void> {
  let meta: { missing_columns?: string[] };
  try {
    meta = JSON.parse(await Deno.readTextFile(`${dir}/patches.json`));
  } catch {
    return; // no metadata (a patch folder of the Python pipeline): nothing to check
  }
  const missing = targetCols.filter((c) => meta.missing_columns?.includes(c));
  if (missing.length) {
    const have = OBS_COLUMNS.filter((c) => !meta.missing_columns?.includes(c));
    throw new DataError(
      `${dir} holds no ${
        missing.join(", ")
      } (it was prepared without them, e.g. from MODFLOW 6 heads without ` +
        `a concentration file): choose from ${have.join(", ")} with --target-cols`,
    );
  }
}
