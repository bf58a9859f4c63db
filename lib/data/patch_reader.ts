/**
 * Reading one patch folder of the Python layout (`core_coords.npy` [Nc, 3], `core_obs.npy` [T, Nc, F],
 * `ghost_coords.npy` [Ng, 3], `ghost_obs.npy` [T, Ng, F]): shapes checked, target columns selected into
 * `[C, N, T]` float32 (core points first), NaN/Inf found and, on request, the affected points dropped.
 *
 * @module
 */

import { readNpy } from "../io/npy.ts";
import type { NpyArray } from "../io/npy.ts";
import { DataError } from "./data_error.ts";

/** The files every patch folder holds. */
export const REQUIRED_FILES = [
  "core_coords.npy",
  "core_obs.npy",
  "ghost_coords.npy",
  "ghost_obs.npy",
] as const;

/** A patch as read: raw coordinates, values minus a per-column shift. */
export interface RawPatch {
  /** Folder name. */
  name: string;
  /** The number after the last `_` of the name. */
  id: number;
  /** Core points (first). */
  nCore: number;
  /** Ghost points (after the core points). */
  nGhost: number;
  /** All points kept. */
  n: number;
  /** Time steps. */
  steps: number;
  /** Coordinates [n, 3], as in the files. */
  coords: Float64Array;
  /** Values [C, n, T] minus the column's shift. */
  values: Float32Array;
  /** Points dropped for NaN/Inf values. */
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

/** The four arrays of a patch folder; a missing one is an error naming it and the fix. */
async function readArrays(pdir: string): Promise<Record<(typeof REQUIRED_FILES)[number], NpyArray>> {
  const out = {} as Record<(typeof REQUIRED_FILES)[number], NpyArray>;
  for (const f of REQUIRED_FILES) {
    try {
      await Deno.stat(`${pdir}/${f}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new DataError(
        `${pdir}: missing ${f} (every patch folder needs ${
          REQUIRED_FILES.join(", ")
        }); re-run 'deno task prepare' ` +
          `or remove the folder`,
      );
    }
    out[f] = await readNpy(`${pdir}/${f}`);
  }
  return out;
}

/** Checks the shapes of a patch's arrays against each other; returns core points, ghost points and steps. */
function checkShapes(pdir: string, a: Record<(typeof REQUIRED_FILES)[number], NpyArray>) {
  const cc = a["core_coords.npy"],
    co = a["core_obs.npy"],
    gc = a["ghost_coords.npy"],
    go = a["ghost_obs.npy"];
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
  return { nCore, nGhost, T };
}

/**
 * Reads patch folder `dir/name`: the target columns `colIdx` (indices into the last axis of the obs files) minus
 * `shift` (each column's first value seen, set here if still NaN), and what to do with NaN/Inf (`drop`: the affected
 * points go; `fail`: reported, the caller stops). Returns the patch, its files' bytes and a NaN/Inf report line.
 */
export async function readPatch(
  dir: string,
  name: string,
  colIdx: number[],
  shift: Float64Array,
  nanPolicy: "fail" | "drop",
): Promise<{ patch: RawPatch; bytes: number; nanReport?: string }> {
  const pdir = `${dir}/${name}`;
  const a = await readArrays(pdir);
  const bytes = Object.values(a).reduce((s, x) => s + x.data.byteLength, 0);
  const { nCore, nGhost, T } = checkShapes(pdir, a);
  const n = nCore + nGhost;
  const coords = new Float64Array(n * 3);
  coords.set(asFloat64(a["core_coords.npy"]));
  coords.set(asFloat64(a["ghost_coords.npy"]), nCore * 3);
  const sel = selectColumns(a["core_obs.npy"], a["ghost_obs.npy"], { nCore, nGhost, T }, colIdx, shift);
  const { values, badPoint } = sel;
  let nonFinite = sel.nonFinite;
  for (let j = 0; j < n; j++) {
    if (![0, 1, 2].every((k) => Number.isFinite(coords[j * 3 + k]))) {
      if (!badPoint[j]) nonFinite++; // a point with bad coordinates counts once
      badPoint[j] = 1;
    }
  }
  const id = Number(/_(\d+)$/.exec(name)![1]);
  const patch: RawPatch = { name, id, nCore, nGhost, n, steps: T, coords, values, droppedPoints: 0 };
  if (nonFinite === 0) return { patch, bytes };
  const nanReport = `${name}: ${nonFinite} NaN/Inf values in ${badPoint.reduce((s, b) => s + b, 0)} points` +
    (sel.partly ? ` (${sel.partly} of them have values at other steps: dry at some steps only)` : "");
  if (nanPolicy !== "drop") return { patch, bytes, nanReport };
  return { patch: dropPoints(pdir, patch, badPoint, colIdx.length), bytes, nanReport };
}

/** Values [C, n, T] of the target columns minus their shift; points with NaN/Inf values marked in `badPoint`. */
function selectColumns(
  co: NpyArray,
  go: NpyArray,
  d: { nCore: number; nGhost: number; T: number },
  colIdx: number[],
  shift: Float64Array,
): { values: Float32Array; badPoint: Uint8Array; nonFinite: number; partly: number } {
  const { nCore, nGhost, T } = d, n = nCore + nGhost, C = colIdx.length;
  const values = new Float32Array(C * n * T);
  const coreGet = obsValue(co), ghostGet = obsValue(go);
  const F = co.shape[2], FG = go.shape[2];
  const badPoint = new Uint8Array(n);
  const badSteps = new Uint8Array(n * T); // which steps of a point have a NaN/Inf (any column)
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
          badSteps[j * T + t] = 1;
          continue;
        }
        if (Number.isNaN(shift[c])) shift[c] = v;
        values[(c * n + j) * T + t] = v - shift[c];
      }
    }
  }
  // points whose values are missing at some steps only (cells that go dry and wet again)
  let partly = 0;
  for (let j = 0; j < n; j++) {
    if (!badPoint[j]) continue;
    let k = 0;
    for (let t = 0; t < T; t++) k += badSteps[j * T + t];
    if (k < T) partly++;
  }
  return { values, badPoint, nonFinite, partly };
}

/** The patch without the points marked in `badPoint`. */
function dropPoints(pdir: string, r: RawPatch, badPoint: Uint8Array, C: number): RawPatch {
  const keep: number[] = [];
  for (let j = 0; j < r.n; j++) if (!badPoint[j]) keep.push(j);
  const coreKept = keep.filter((j) => j < r.nCore).length;
  if (coreKept === 0) {
    throw new DataError(`${pdir}: every core point has NaN/Inf values; fix or remove this patch`);
  }
  const T = r.steps,
    values = new Float32Array(C * keep.length * T),
    coords = new Float64Array(keep.length * 3);
  keep.forEach((j, k) => {
    coords.set(r.coords.subarray(j * 3, j * 3 + 3), k * 3);
    for (let c = 0; c < C; c++) {
      values.set(r.values.subarray((c * r.n + j) * T, (c * r.n + j + 1) * T), (c * keep.length + k) * T);
    }
  });
  return {
    ...r,
    nCore: coreKept,
    nGhost: keep.length - coreKept,
    n: keep.length,
    coords,
    values,
    droppedPoints: r.n - keep.length,
  };
}
