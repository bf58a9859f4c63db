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

import { ToolError } from "../errors.ts";
import { readNpy } from "../io/npy.ts";
import type { NpyArray } from "../io/npy.ts";

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

/** An error in the data; the message names the folder or file and the fix. */
export class DataError extends ToolError {
  /** An error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}

const REQUIRED_FILES = ["core_coords.npy", "core_obs.npy", "ghost_coords.npy", "ghost_obs.npy"];

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

interface RawPatch {
  name: string;
  id: number;
  nCore: number;
  nGhost: number;
  n: number;
  steps: number;
  coords: Float64Array; // [n,3]
  values: Float32Array; // [C, n, T], shifted by `shift`
  droppedPoints: number;
}

function asFloat64(a: NpyArray): Float64Array {
  if (a.data instanceof Float64Array) return a.data;
  if (a.data instanceof BigInt64Array) return Float64Array.from(a.data, Number);
  return Float64Array.from(a.data);
}

function obsValue(a: NpyArray): (i: number) => number {
  const d = a.data;
  if (d instanceof BigInt64Array) return (i) => Number(d[i]);
  return (i) => d[i];
}

/**
 * Loads a patch-data folder: validates every patch, selects the target columns, computes the normalisation
 * statistics from the training part of all patches (unless given) and standardises coordinates and values.
 *
 * Statistics: coordinates over the core points of all patches; each target column over the core points and the
 * training steps of all patches; standard deviations with ddof = 1 (as pandas).
 *
 * @example
 * ```ts ignore
 * const ds = await loadPatchDataset("data/henry/filter_patch", {
 *   targetCols: ["mass_concentration"], inputWindow: 10, outputWindow: 10,
 * });
 * ds.windowCounts("train");
 * ```
 */
export async function loadPatchDataset(dir: string, options: DatasetOptions): Promise<PatchDataset> {
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
    if (i < 0) {
      throw new DataError(`unknown target column '${c}' (choose from: ${OBS_COLUMNS.join(", ")})`);
    }
    return i;
  });
  if (new Set(opts.targetCols).size !== opts.targetCols.length) {
    throw new DataError(`target column given twice: ${opts.targetCols.join(",")}`);
  }
  if (!(opts.valRatio >= 0 && opts.valRatio < 1)) {
    throw new DataError(`val ratio must be in [0, 1), got ${opts.valRatio}`);
  }
  for (
    const [k, v] of [["input window", opts.inputWindow], ["output window", opts.outputWindow], [
      "stride",
      opts.stride,
    ]] as const
  ) {
    if (!Number.isInteger(v) || v < 1) throw new DataError(`${k} must be a positive integer, got ${v}`);
  }
  const C = colIdx.length;
  const names = await listPatchDirs(dir);

  // Pass 1: read and validate every patch; store values in float32 after subtracting a per-column shift (the first
  // value seen), so that float32 keeps the precision of fields whose spread is tiny next to their mean (heads).
  const shift = new Float64Array(C).fill(NaN);
  const raws: RawPatch[] = [];
  const nanReports: string[] = [];
  let rawBytes = 0;
  for (const name of names) {
    const pdir = `${dir}/${name}`;
    const arrays: Record<string, NpyArray> = {};
    for (const f of REQUIRED_FILES) {
      try {
        arrays[f] = await readNpy(`${pdir}/${f}`);
      } catch (e) {
        if ((e as Error).message.endsWith("file not found")) {
          throw new DataError(
            `${pdir}: missing ${f} (every patch folder needs ${
              REQUIRED_FILES.join(", ")
            }); re-run 'deno task prepare' ` +
              `or remove the folder`,
          );
        }
        throw e;
      }
    }
    const cc = arrays["core_coords.npy"], co = arrays["core_obs.npy"];
    const gc = arrays["ghost_coords.npy"], go = arrays["ghost_obs.npy"];
    for (const a of [cc, co, gc, go]) rawBytes += a.data.byteLength;
    const bad = (msg: string) => new DataError(`${pdir}: ${msg}`);
    if (gc.data.length === 0 && gc.shape.length < 2) gc.shape = [0, 3];
    if (cc.shape.length !== 2 || cc.shape[1] !== 3) {
      throw bad(`core_coords.npy has shape (${cc.shape.join(", ")}); expected (Nc, 3)`);
    }
    if (gc.shape.length !== 2 || gc.shape[1] !== 3) {
      throw bad(`ghost_coords.npy has shape (${gc.shape.join(", ")}); expected (Ng, 3)`);
    }
    const nCore = cc.shape[0], nGhost = gc.shape[0];
    if (nCore === 0) throw bad("core_coords.npy holds no points");
    if (co.shape.length !== 3 || co.shape[1] !== nCore || co.shape[2] < 3) {
      throw bad(
        `core_obs.npy has shape (${co.shape.join(", ")}); expected (T, ${nCore}, 3) to match core_coords.npy`,
      );
    }
    const T = co.shape[0];
    if (go.data.length === 0 && nGhost === 0) go.shape = [T, 0, co.shape[2]];
    if (go.shape.length !== 3 || go.shape[0] !== T || go.shape[1] !== nGhost || go.shape[2] < 3) {
      throw bad(
        `ghost_obs.npy has shape (${go.shape.join(", ")}); expected (${T}, ${nGhost}, 3) to match ` +
          `core_obs.npy (T = ${T}) and ghost_coords.npy (Ng = ${nGhost})`,
      );
    }
    const idMatch = /_(\d+)$/.exec(name)!;
    let n = nCore + nGhost;
    const coords = new Float64Array(n * 3);
    coords.set(asFloat64(cc));
    coords.set(asFloat64(gc), nCore * 3);
    // values [C, n, T]
    let values = new Float32Array(C * n * T);
    const coreGet = obsValue(co), ghostGet = obsValue(go);
    const F = co.shape[2], FG = go.shape[2];
    const badPoint = new Uint8Array(n);
    let nonFinite = 0;
    for (let c = 0; c < C; c++) {
      const ci = colIdx[c];
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < n; j++) {
          const v = j < nCore
            ? coreGet((t * nCore + j) * F + ci)
            : ghostGet((t * nGhost + (j - nCore)) * FG + ci);
          if (!Number.isFinite(v)) {
            nonFinite++;
            badPoint[j] = 1;
            continue;
          }
          if (Number.isNaN(shift[c])) shift[c] = v;
          values[(c * n + j) * T + t] = v - shift[c];
        }
      }
    }
    for (let j = 0; j < n; j++) {
      if (
        !Number.isFinite(coords[j * 3]) || !Number.isFinite(coords[j * 3 + 1]) ||
        !Number.isFinite(coords[j * 3 + 2])
      ) {
        if (!badPoint[j]) nonFinite++;
        badPoint[j] = 1;
      }
    }
    let dropped = 0;
    let coreKept = nCore, ghostKept = nGhost;
    if (nonFinite > 0) {
      const nBadPts = badPoint.reduce((a, b) => a + b, 0);
      nanReports.push(`${name}: ${nonFinite} NaN/Inf values in ${nBadPts} points`);
      if (opts.nanPolicy === "drop") {
        const keep: number[] = [];
        for (let j = 0; j < n; j++) if (!badPoint[j]) keep.push(j);
        coreKept = keep.filter((j) => j < nCore).length;
        ghostKept = keep.length - coreKept;
        if (coreKept === 0) throw bad(`every core point has NaN/Inf values; fix or remove this patch`);
        const nv = new Float32Array(C * keep.length * T);
        const nc = new Float64Array(keep.length * 3);
        keep.forEach((j, k) => {
          nc.set(coords.subarray(j * 3, j * 3 + 3), k * 3);
          for (let c = 0; c < C; c++) {
            nv.set(values.subarray((c * n + j) * T, (c * n + j + 1) * T), (c * keep.length + k) * T);
          }
        });
        dropped = n - keep.length;
        n = keep.length;
        values = nv;
        raws.push({
          name,
          id: Number(idMatch[1]),
          nCore: coreKept,
          nGhost: ghostKept,
          n,
          steps: T,
          coords: nc,
          values,
          droppedPoints: dropped,
        });
        continue;
      }
    }
    raws.push({ name, id: Number(idMatch[1]), nCore, nGhost, n, steps: T, coords, values, droppedPoints: 0 });
  }
  if (nanReports.length > 0 && opts.nanPolicy === "fail") {
    throw new DataError(
      `NaN or infinite values in ${dir}:\n  ${nanReports.join("\n  ")}\n` +
        `fix the data, or drop the affected points with --nan-policy drop`,
    );
  }
  if (nanReports.length > 0) {
    console.warn(`warning: dropped points with NaN/Inf values:\n  ${nanReports.join("\n  ")}`);
  }

  const trainStepsOf = (T: number) => Math.floor(T * (1 - opts.valRatio));

  // Statistics (float64 accumulation of shifted values).
  let norm = options.normalization;
  if (norm) {
    const same = norm.columns.length === C && norm.columns.every((c, i) => c === opts.targetCols[i]);
    if (!same) {
      throw new DataError(
        `the given normalisation statistics are for columns ${norm.columns.join(",")}, not ${
          opts.targetCols.join(",")
        }`,
      );
    }
  } else {
    const cs = [0, 0, 0], cs2 = [0, 0, 0];
    let cn = 0;
    const c0 = raws[0].coords.slice(0, 3);
    const vs = new Float64Array(C), vs2 = new Float64Array(C);
    let vn = 0;
    for (const r of raws) {
      for (let j = 0; j < r.nCore; j++) {
        for (let a = 0; a < 3; a++) {
          const d = r.coords[j * 3 + a] - c0[a];
          cs[a] += d;
          cs2[a] += d * d;
        }
      }
      cn += r.nCore;
      const tr = trainStepsOf(r.steps);
      for (let c = 0; c < C; c++) {
        let s = 0, s2 = 0;
        for (let j = 0; j < r.nCore; j++) {
          const base = (c * r.n + j) * r.steps;
          for (let t = 0; t < tr; t++) {
            const v = r.values[base + t];
            s += v;
            s2 += v * v;
          }
        }
        vs[c] += s;
        vs2[c] += s2;
      }
      vn += r.nCore * tr;
    }
    if (vn < 2) {
      throw new DataError(
        `${dir}: the training part holds fewer than 2 values per column (val ratio ${opts.valRatio}); ` +
          `lower --val-ratio or add time steps`,
      );
    }
    const std = (s: number, s2: number, n: number) => Math.sqrt(Math.max(0, (s2 - (s * s) / n) / (n - 1)));
    norm = {
      coordMean: [0, 1, 2].map((a) => c0[a] + cs[a] / cn),
      coordStd: [0, 1, 2].map((a) => std(cs[a], cs2[a], cn)),
      columns: [...opts.targetCols],
      mean: Array.from(vs, (s, c) => shift[c] + s / vn),
      std: Array.from(vs, (s, c) => std(s, vs2[c], vn)),
      source: "core points of all patches; values over the training steps",
    };
  }
  // A constant field (std 0) is left unscaled rather than divided by zero.
  const safe = (s: number) => (s > 0 && Number.isFinite(s) ? s : 1);

  const rawHash = new DataHash();
  for (const r of raws) {
    rawHash.bytes(new Uint8Array(r.values.buffer, r.values.byteOffset, r.values.byteLength));
  }
  const valuesHash = rawHash.hex();
  const patches: Patch[] = raws.map((r) => {
    const coords = new Float32Array(r.n * 3);
    for (let j = 0; j < r.n; j++) {
      for (let a = 0; a < 3; a++) {
        coords[j * 3 + a] = (r.coords[j * 3 + a] - norm!.coordMean[a]) / safe(norm!.coordStd[a]);
      }
    }
    for (let c = 0; c < C; c++) {
      const off = shift[c] - norm!.mean[c], inv = 1 / safe(norm!.std[c]);
      const v = r.values;
      const lo = c * r.n * r.steps, hi = lo + r.n * r.steps;
      for (let i = lo; i < hi; i++) v[i] = (v[i] + off) * inv;
    }
    return {
      id: r.id,
      name: r.name,
      nCore: r.nCore,
      nGhost: r.nGhost,
      n: r.n,
      steps: r.steps,
      trainSteps: trainStepsOf(r.steps),
      coords,
      values: r.values,
      droppedPoints: r.droppedPoints,
    };
  });
  const h = new DataHash();
  h.text(JSON.stringify({ cols: opts.targetCols, shift: Array.from(shift) }));
  for (const r of raws) {
    h.text(`${r.name}:${r.nCore}:${r.nGhost}:${r.steps}`);
    h.bytes(new Uint8Array(r.coords.buffer, r.coords.byteOffset, r.coords.byteLength));
  }
  h.text(valuesHash);
  return new PatchDataset(dir, patches, norm, opts, rawBytes, h.hex());
}

/** A fast non-cryptographic 64-bit hash (two 32-bit multiply-xorshift lanes) for data fingerprints. */
class DataHash {
  #a = 0x811c9dc5;
  #b = 0x9e3779b9;
  bytes(u8: Uint8Array): void {
    let a = this.#a, b = this.#b;
    const n4 = u8.length >> 2;
    const words = u8.byteOffset % 4 === 0
      ? new Uint32Array(u8.buffer, u8.byteOffset, n4)
      : new Uint32Array(u8.slice(0, n4 * 4).buffer);
    for (let i = 0; i < n4; i++) {
      const w = words[i];
      a = Math.imul(a ^ w, 0x01000193);
      b = Math.imul(b ^ (w >>> 7) ^ (w << 11), 0x85ebca6b);
      b ^= b >>> 13;
    }
    for (let i = n4 * 4; i < u8.length; i++) {
      a = Math.imul(a ^ u8[i], 0x01000193);
      b = Math.imul(b ^ u8[i], 0xc2b2ae35);
    }
    a = Math.imul(a ^ u8.length, 0x01000193);
    this.#a = a >>> 0;
    this.#b = b >>> 0;
  }
  text(s: string): void {
    this.bytes(new TextEncoder().encode(s));
  }
  hex(): string {
    return this.#a.toString(16).padStart(8, "0") + this.#b.toString(16).padStart(8, "0");
  }
}
