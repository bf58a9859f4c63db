/**
 * Raw data -> patch folder, the way the Python pipeline does it: the mesh slices are split into groups, the nodes
 * of each group are clustered with k-means on (X, Y, Z) into patches, and every patch gets ghost points from its
 * neighbouring patches. The raw data is a folder of CSV files (one per time step) or a MODFLOW 6 model's binary
 * files (grid, heads, concentrations; slice = layer). Only the geometry is held in memory: the time steps are
 * read one at a time and appended to every patch's files, so a model of any length prepares in the memory of one
 * step; everything is written into a temporary folder that replaces the output folder only when complete.
 *
 * Neighbours of a patch: the patches owning one of the `neighbourK` nearest nodes of any of its nodes. Ghost
 * points: from each neighbour, the nodes closest to the patch (`ghostPointsRatio` x patch size of them, or
 * `nGhostPoints`). Neighbour queries use k-d trees (no distance matrices). Deterministic for a given seed.
 *
 * @module
 */

import { readNumericCsv } from "../io/csv.ts";
import { encodeNpy, npyHeader } from "../io/npy.ts";
import { Mf6Error, Mf6OutputFile, readMf6Grid } from "../io/mf6.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { diskFullOr, writePoint } from "../io/disk_full.ts";
import { KdTree } from "./kdtree.ts";
import { kmeans } from "./kmeans.ts";
import { OBS_COLUMNS } from "./dataset.ts";
import { chooseWindows } from "./windows.ts";
import { DataError } from "./dataset.ts";

/** Options of {@linkcode preparePatches}. */
export interface PrepareOptions {
  /** Folder of raw CSV files, one per saved time step (lexical order = time order); unused with `mf6`. */
  rawDir: string;
  /** A MODFLOW 6 model's binary output instead of CSV files. */
  mf6?: Mf6Source;
  /** Patch folder to write. */
  outDir: string;
  /**
   * Total number of patches. Default: 20, fewer where the data is small (at least 50 points per patch, and at
   * least one patch per slice group).
   */
  nPatches?: number;
  /** Groups of consecutive slices clustered separately. Default: 4, or the data's slices where it has fewer. */
  sliceSplit?: number;
  /** Nearest nodes looked at to find neighbouring patches. Default 10. */
  neighbourK?: number;
  /** Ghost points taken from each neighbour, as a share of the patch size. Default 0.05. */
  ghostPointsRatio?: number;
  /** Ghost points taken from each neighbour (overrides the ratio). */
  nGhostPoints?: number;
  /** Seed of k-means. Default 42. */
  seed?: number;
  /** Element type of the `*_obs.npy` files. Default float32. */
  dtype?: "float32" | "float64";
  /** Replace an existing non-empty output folder. */
  force?: boolean;
  /** Keep NaN/Inf values instead of refusing them. */
  allowNan?: boolean;
  /** Progress messages. */
  log?: (msg: string) => void;
}

/** MODFLOW 6 binary files to prepare from (see `lib/io/mf6.ts`). */
export interface Mf6Source {
  /** Binary grid file (`.dis.grb`, `.disv.grb`, `.disu.grb`). */
  grid: string;
  /** Heads (`.hds`). */
  heads: string;
  /** Concentrations (`.ucn`); without it the data holds heads and pressures only (concentration is NaN). */
  conc?: string;
  /**
   * Pressure = (densityRef + drhodc x C) x gravity x (head - z) in Pa, z the cell centre (as the CSV export and
   * the Henry generator define it; C = 0 without concentrations). Defaults 1000 kg/m3, 0.7, 9.81 m/s2.
   */
  densityRef?: number;
  /** Density slope d rho / dC of the pressure (default 0.7). */
  drhodc?: number;
  /** Gravity of the pressure, m/s2 (default 9.81). */
  gravity?: number;
}

/** Summary of one written patch (also in `patches.json`). */
export interface PatchInfo {
  /** Patch id. */
  id: number;
  /** Folder name. */
  name: string;
  /** Slice group. */
  group: number;
  /** Core points. */
  core: number;
  /** Ghost points. */
  ghost: number;
  /** Ids of the neighbouring patches. */
  neighbours: number[];
}

/** What {@linkcode preparePatches} wrote. */
export interface PrepareResult {
  /** The patch folder written. */
  outDir: string;
  /** Mesh nodes. */
  nodes: number;
  /** Time steps. */
  steps: number;
  /** Number of patches. */
  patches: PatchInfo[];
  /** Wall time, s. */
  seconds: number;
}

const RAW_COLUMNS = ["node", "slice", "X", "Y", "Z", ...OBS_COLUMNS];

/** The copy of a MODFLOW 6 grid file in a patch folder prepared from one. */
export const MF6_GRID_FILE = "mf6_grid.grb";

/** Lists the CSV files of a raw folder in lexical (= time) order. */
export async function listRawFiles(rawDir: string): Promise<string[]> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(rawDir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new DataError(`raw data folder not found: ${rawDir}`);
    throw e;
  }
  const files = entries.filter((e) => e.isFile && e.name.toLowerCase().endsWith(".csv")).map((e) => e.name)
    .sort();
  if (files.length === 0) throw new DataError(`no .csv files in the raw data folder ${rawDir}`);
  return files;
}

/** Splits `items` into `parts` consecutive groups whose sizes differ by at most one (first groups larger). */
export function arraySplit<T>(items: T[], parts: number): T[][] {
  const out: T[][] = [];
  const base = Math.floor(items.length / parts), extra = items.length % parts;
  let at = 0;
  for (let i = 0; i < parts; i++) {
    const len = base + (i < extra ? 1 : 0);
    out.push(items.slice(at, at + len));
    at += len;
  }
  return out;
}

/** The options with their defaults (the patch counts are settled once the data's slices are known). */
type Prepared = Required<Omit<PrepareOptions, "nGhostPoints" | "nPatches" | "sliceSplit">> & {
  nGhostPoints?: number;
  nPatches?: number;
  sliceSplit?: number;
};

/** The default number of patches and slice groups (fewer where the data is small), and the fewest points a default patch gets. */
export const DEFAULT_PATCHES = { nPatches: 20, sliceSplit: 4, minPoints: 50 };

/** The options with defaults, checked (errors name the flag). */
function checkedOptions(options: PrepareOptions): Prepared {
  if (options.mf6) options = { ...options, rawDir: options.rawDir ?? "" };
  const o = {
    neighbourK: 10,
    ghostPointsRatio: 0.05,
    seed: 42,
    dtype: "float32" as const,
    force: false,
    allowNan: false,
    log: (_: string) => {},
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
  } as Prepared;
  const counts = [["--n-patches", o.nPatches], ["--slice-split", o.sliceSplit], [
    "--neighbour-k",
    o.neighbourK,
  ]];
  for (const [flag, v] of counts as [string, number | undefined][]) {
    if (v === undefined) continue; // settled from the data
    if (!Number.isInteger(v) || v < 1) throw new DataError(`${flag} must be a positive integer, got ${v}`);
  }
  if (o.nGhostPoints !== undefined && (!Number.isInteger(o.nGhostPoints) || o.nGhostPoints < 0)) {
    throw new DataError(`--n-ghost-points must be a non-negative integer, got ${o.nGhostPoints}`);
  }
  if (!(o.ghostPointsRatio >= 0)) {
    throw new DataError(`--ghost-points-ratio must be >= 0, got ${o.ghostPointsRatio}`);
  }
  if (o.nPatches !== undefined && o.sliceSplit !== undefined && o.nPatches < o.sliceSplit) {
    throw new DataError(`--n-patches (${o.nPatches}) must be at least --slice-split (${o.sliceSplit})`);
  }
  return o;
}

/** True when the folder exists and is not empty. */
async function nonEmpty(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return true;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return false;
}

/**
 * Where the raw series comes from: the nodes (ids, slices, coordinates) at once, then the observations one time
 * step at a time.
 */
interface RawSeries {
  n: number;
  nodeIds: Float64Array;
  slices: Float64Array;
  xyz: Float64Array;
  /** Time steps. */
  steps: number;
  /** Reads step t (in order) into `dst` [n, 3]: mass_concentration, head, pressure; checks every value. */
  read(t: number, dst: Float32Array | Float64Array): Promise<void>;
  /** Frees what it holds open. */
  close(): void;
  /** What `patches.json` records about the source. */
  meta: Record<string, unknown>;
}

/** The raw CSV folder: node ids, slices and coordinates from the first file; every file checked as it is read. */
async function csvSeries(o: Prepared): Promise<RawSeries> {
  const files = await listRawFiles(o.rawDir);
  const first = await readNumericCsv(`${o.rawDir}/${files[0]}`, RAW_COLUMNS);
  const n = first.rows;
  if (n === 0) throw new DataError(`${o.rawDir}/${files[0]} has no data rows`);
  const { node: nodeIds, slice: slices, X, Y, Z } = first.columns;
  const xyz = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    xyz[i * 3] = X[i];
    xyz[i * 3 + 1] = Y[i];
    xyz[i * 3 + 2] = Z[i];
  }
  for (let i = 0; i < n * 3; i++) {
    if (!Number.isFinite(xyz[i])) {
      throw new DataError(
        `${o.rawDir}/${files[0]}:${Math.floor(i / 3) + 2}: coordinate ${"XYZ"[i % 3]} is not finite`,
      );
    }
  }
  o.log(`reading ${files.length} time steps of ${n} nodes from ${o.rawDir}`);
  return {
    n,
    nodeIds: Float64Array.from(nodeIds),
    slices: Float64Array.from(slices),
    xyz,
    steps: files.length,
    meta: { source: o.rawDir, files },
    close() {},
    async read(t, dst) {
      const path = `${o.rawDir}/${files[t]}`;
      const csv = t === 0 ? first : await readNumericCsv(path, ["node", ...OBS_COLUMNS], n);
      if (csv.rows !== n) {
        throw new DataError(
          `${path} has ${csv.rows} rows but ${files[0]} has ${n}: every time step needs the same nodes`,
        );
      }
      const node = csv.columns.node;
      for (let i = 0; i < n; i++) {
        if (node[i] !== nodeIds[i]) {
          throw new DataError(
            `${path}:${i + 2}: node ${node[i]} where ${files[0]} has node ${
              nodeIds[i]
            }: every time step needs ` +
              `the same nodes in the same order`,
          );
        }
      }
      for (let c = 0; c < 3; c++) {
        const col = csv.columns[OBS_COLUMNS[c]];
        for (let i = 0; i < n; i++) {
          const v = col[i];
          if (!o.allowNan && !Number.isFinite(v)) {
            throw new DataError(
              `${path}:${i + 2}: ${OBS_COLUMNS[c]} is ${v} (node ${node[i]}); fix the export, or keep such ` +
                `values with --allow-nan and drop them when training (--nan-policy drop)`,
            );
          }
          dst[i * 3 + c] = v;
        }
      }
    },
  };
}

/**
 * A MODFLOW 6 model's binary files: the active cells (IDOMAIN > 0) of the grid, node id = cell number, slice =
 * layer; heads and concentrations of each saved step, pressure from head, concentration and elevation.
 */
async function mf6Series(o: Prepared, m: Mf6Source): Promise<RawSeries> {
  const grid = await readMf6Grid(m.grid);
  const heads = await Mf6OutputFile.open(m.heads, grid);
  const conc = m.conc ? await Mf6OutputFile.open(m.conc, grid) : undefined;
  try {
    // the record label says what a file holds (MODFLOW 6 writes HEAD and CONCENTRATION)
    if (!/^HEAD/i.test(heads.text)) {
      throw new Mf6Error(
        `${m.heads} holds ${heads.text} records, not HEAD: it is not a heads file` +
          (/CONC/i.test(heads.text) ? `; pass it as --mf6-conc, and the .hds as --mf6-heads` : ""),
      );
    }
    if (conc && !/^CONC/i.test(conc.text)) {
      throw new Mf6Error(
        `${m.conc} holds ${conc.text} records, not CONCENTRATION: it is not a concentration file` +
          (/^HEAD/i.test(conc.text)
            ? `; give --mf6-conc the transport model's concentration file (.ucn), or leave it out to train on ` +
              `heads`
            : ""),
      );
    }
    if (conc) matchSteps(heads, conc);
  } catch (e) {
    heads.close();
    conc?.close();
    throw e;
  }
  const cells: number[] = [];
  for (let c = 0; c < grid.ncells; c++) if (grid.active[c]) cells.push(c);
  const n = cells.length;
  if (n === 0) throw new DataError(`${m.grid}: no active cells (IDOMAIN > 0)`);
  const xyz = new Float64Array(n * 3), nodeIds = new Float64Array(n), slices = new Float64Array(n);
  cells.forEach((c, i) => {
    xyz.set([grid.x[c], grid.y[c], grid.z[c]], i * 3);
    nodeIds[i] = c + 1;
    slices[i] = grid.layer[c];
  });
  const rho0 = m.densityRef ?? 1000, drhodc = m.drhodc ?? 0.7, g = m.gravity ?? 9.81;
  const h = new Float64Array(grid.ncells), cv = new Float64Array(grid.ncells);
  o.log(
    `reading ${heads.steps.length} time steps of ${n} active cells (of ${grid.ncells}, ${grid.type} grid, ` +
      `${grid.nlay} layer(s)) from ${m.heads}${conc ? ` and ${m.conc}` : " (no concentrations)"}`,
  );
  return {
    n,
    nodeIds,
    slices,
    xyz,
    steps: heads.steps.length,
    meta: {
      source: {
        mf6_grid: m.grid,
        mf6_heads: m.heads,
        mf6_conc: m.conc ?? null,
        grid_type: grid.type,
        crs: grid.crs ?? null,
      },
      times: heads.steps.map((s) => s.totim),
      kstp_kper: heads.steps.map((s) => [s.kstp, s.kper]),
      pressure: {
        density_ref: rho0,
        drhodc,
        gravity: g,
        formula: "(density_ref + drhodc C) gravity (head - z)",
      },
      missing_columns: conc ? [] : ["mass_concentration"],
    },
    close() {
      heads.close();
      conc?.close();
    },
    async read(t, dst) {
      await heads.readStep(t, h);
      if (conc) await conc.readStep(t, cv);
      const s = heads.steps[t];
      for (let i = 0; i < n; i++) {
        const c = cells[i];
        const hv = h[c], cc = conc ? cv[c] : NaN;
        if (!o.allowNan && (!Number.isFinite(hv) || (conc && !Number.isFinite(cc)))) {
          const which = !Number.isFinite(hv) ? `head in ${m.heads}` : `concentration in ${m.conc}`;
          throw new DataError(
            `time step ${s.kstp} of period ${s.kper} (time ${s.totim}): the ${which} of cell ${
              c + 1
            } (layer ` +
              `${
                grid.layer[c]
              }) has no value (dry or inactive); keep such values with --allow-nan and drop them ` +
              `when training (--nan-policy drop)`,
          );
        }
        dst[i * 3] = cc;
        dst[i * 3 + 1] = hv;
        dst[i * 3 + 2] = (rho0 + drhodc * (conc ? cc : 0)) * g * (hv - grid.z[c]);
      }
    },
  };
}

/** Heads and concentrations must hold the same time steps. */
function matchSteps(a: Mf6OutputFile, b: Mf6OutputFile): void {
  const n = Math.min(a.steps.length, b.steps.length);
  for (let i = 0; i < n; i++) {
    const [s, t] = [a.steps[i], b.steps[i]];
    if (
      s.kstp !== t.kstp || s.kper !== t.kper ||
      Math.abs(s.totim - t.totim) > 1e-9 * Math.max(1, Math.abs(s.totim))
    ) {
      throw new Mf6Error(
        `saved step ${
          i + 1
        } is time step ${s.kstp} of period ${s.kper} (time ${s.totim}) in ${a.path} but time ` +
          `step ${t.kstp} of period ${t.kper} (time ${t.totim}) in ${b.path}: the files must save the same time ` +
          `steps (a step is missing in one of them)`,
      );
    }
  }
  if (a.steps.length !== b.steps.length) {
    const [longer, shorter] = a.steps.length > b.steps.length ? [a, b] : [b, a];
    const s = longer.steps[n];
    throw new Mf6Error(
      `${longer.path} saves ${longer.steps.length} time steps, ${shorter.path} ${shorter.steps.length}: ` +
        `time step ${s.kstp} of period ${s.kper} (time ${s.totim}) is missing in ${shorter.path}`,
    );
  }
}

/** Says which patch counts a run uses where they were left to the data (and why they differ from the defaults). */
function settled(o: Prepared, slices: number, n: number, sliceSplit: number, nPatches: number): void {
  if (o.sliceSplit !== undefined && o.nPatches !== undefined) return;
  const why: string[] = [];
  if (o.sliceSplit === undefined) {
    why.push(
      `--slice-split ${sliceSplit}` +
        (sliceSplit < DEFAULT_PATCHES.sliceSplit ? ` (the data has ${slices} distinct slice(s))` : ""),
    );
  }
  if (o.nPatches === undefined) {
    why.push(
      `--n-patches ${nPatches}` +
        (nPatches < DEFAULT_PATCHES.nPatches
          ? ` (${n} points: at least ${DEFAULT_PATCHES.minPoints} per patch, ${sliceSplit} slice group(s))`
          : ""),
    );
  }
  o.log(`patches: ${why.join(", ")}; give the flags to choose others`);
}

/** Patches: the slices split into groups, each group clustered by k-means. Returns each node's patch. */
function clusterPatches(
  o: Prepared,
  r: RawSeries,
): { owner: Int32Array; patchGroup: number[]; members: number[][] } {
  const uniqueSlices = [...new Set(r.slices)].sort((a, b) => a - b);
  if (o.sliceSplit !== undefined && uniqueSlices.length < o.sliceSplit) {
    throw new DataError(
      `--slice-split ${o.sliceSplit} is more than the ${uniqueSlices.length} distinct slices in the data; lower it`,
    );
  }
  const sliceSplit = o.sliceSplit ?? Math.min(DEFAULT_PATCHES.sliceSplit, uniqueSlices.length);
  const groups = arraySplit(uniqueSlices, sliceSplit);
  const groupOfSlice = new Map<number, number>();
  groups.forEach((g, gi) => g.forEach((s) => groupOfSlice.set(s, gi)));
  const inGroups: number[][] = groups.map(() => []);
  for (let i = 0; i < r.n; i++) inGroups[groupOfSlice.get(r.slices[i])!].push(i);
  const fewest = Math.min(...inGroups.map((g) => g.length));
  const nPatches = o.nPatches ??
    Math.min(
      DEFAULT_PATCHES.nPatches,
      sliceSplit * Math.max(1, Math.floor(fewest / DEFAULT_PATCHES.minPoints)),
    );
  if (nPatches < sliceSplit) {
    throw new DataError(`--n-patches (${nPatches}) must be at least the ${sliceSplit} slice groups`);
  }
  settled(o, uniqueSlices.length, r.n, sliceSplit, nPatches);
  o.sliceSplit = sliceSplit;
  o.nPatches = nPatches;
  const owner = new Int32Array(r.n);
  const patchGroup: number[] = [];
  for (let g = 0; g < groups.length; g++) {
    const inGroup = inGroups[g];
    const k = Math.floor(nPatches / sliceSplit) + (g < nPatches % sliceSplit ? 1 : 0);
    if (inGroup.length < k) {
      throw new DataError(
        `slice group ${g + 1} has ${inGroup.length} nodes, fewer than its ${k} patches; lower --n-patches`,
      );
    }
    const idx = Int32Array.from(inGroup);
    const { labels } = kmeans(r.xyz, idx, k, o.seed + g);
    for (let i = 0; i < idx.length; i++) owner[idx[i]] = patchGroup.length + labels[i];
    for (let c = 0; c < k; c++) patchGroup.push(g);
  }
  const members: number[][] = Array.from({ length: patchGroup.length }, () => []);
  for (let i = 0; i < r.n; i++) members[owner[i]].push(i);
  return { owner, patchGroup, members };
}

/** Each patch's neighbours: the patches of the `neighbourK` nearest nodes of its nodes. */
function neighbourPatches(o: Prepared, r: RawSeries, owner: Int32Array, P: number): Set<number>[] {
  const tree = new KdTree(r.xyz);
  const kk = Math.min(o.neighbourK, r.n);
  const nbIdx = new Int32Array(kk), nbD2 = new Float64Array(kk);
  const neighbours: Set<number>[] = Array.from({ length: P }, () => new Set());
  for (let i = 0; i < r.n; i++) {
    const found = tree.knn(r.xyz[i * 3], r.xyz[i * 3 + 1], r.xyz[i * 3 + 2], kk, nbIdx, nbD2);
    for (let m = 0; m < found; m++) {
      const q = owner[nbIdx[m]];
      if (q !== owner[i]) neighbours[owner[i]].add(q);
    }
  }
  return neighbours;
}

/** A patch's ghost points: from each neighbour, its nodes nearest to the patch (`take` of them). */
function ghostPoints(
  r: RawSeries,
  core: number[],
  nbs: number[],
  members: number[][],
  take: number,
): number[] {
  const ptree = new KdTree(r.xyz, core);
  const ghost: number[] = [];
  for (const q of nbs) {
    const cand = members[q].map((j) => ({
      j,
      d: ptree.nearestD2(r.xyz[j * 3], r.xyz[j * 3 + 1], r.xyz[j * 3 + 2]),
    }));
    cand.sort((a, b) => a.d - b.d || a.j - b.j);
    for (let m = 0; m < Math.min(take, cand.length); m++) ghost.push(cand[m].j);
  }
  return ghost;
}

/** Writes `<dir>/<kind>_coords.npy` and `_nodes.npy` for the points `pts`. */
async function writeGeometry(
  dir: string,
  kind: "core" | "ghost",
  pts: number[],
  r: RawSeries,
): Promise<void> {
  const coords = new Float64Array(pts.length * 3);
  const ids = new BigInt64Array(pts.length);
  pts.forEach((j, m) => {
    coords.set(r.xyz.subarray(j * 3, j * 3 + 3), m * 3);
    ids[m] = BigInt(r.nodeIds[j]);
  });
  await writeFileAtomic(`${dir}/${kind}_coords.npy`, encodeNpy([pts.length, 3], coords));
  await writeFileAtomic(`${dir}/${kind}_nodes.npy`, encodeNpy([pts.length], ids));
}

/** `<dir>/<kind>_obs.npy` [T, points, 3], written one time step at a time. */
class ObsWriter {
  #file: Deno.FsFile;
  #rows: Float32Array | Float64Array;
  written = 0;

  #idx: Int32Array;

  private constructor(
    file: Deno.FsFile,
    readonly pts: number[],
    readonly steps: number,
    f64: boolean,
    readonly path: string,
  ) {
    this.#file = file;
    this.#idx = Int32Array.from(pts);
    this.#rows = f64 ? new Float64Array(pts.length * 3) : new Float32Array(pts.length * 3);
  }

  static async create(path: string, pts: number[], steps: number, f64: boolean): Promise<ObsWriter> {
    writePoint(path);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { write: true, create: true, truncate: true });
    } catch (e) {
      throw diskFullOr(e, path);
    }
    const w = new ObsWriter(file, pts, steps, f64, path);
    await w.#write(npyHeader([steps, pts.length, 3], f64 ? "<f8" : "<f4"));
    return w;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    try {
      let at = 0;
      while (at < bytes.length) at += await this.#file.write(bytes.subarray(at));
    } catch (e) {
      throw diskFullOr(e, this.path);
    }
  }

  /** Appends this patch's rows of one time step of the whole series `all` [n, 3]. */
  async append(all: Float32Array | Float64Array): Promise<void> {
    const rows = this.#rows, idx = this.#idx;
    for (let m = 0; m < idx.length; m++) {
      const j = 3 * idx[m];
      rows[m * 3] = all[j];
      rows[m * 3 + 1] = all[j + 1];
      rows[m * 3 + 2] = all[j + 2];
    }
    if (this.written === this.steps - 1) writePoint(this.path); // the last step: a disk that fills late
    await this.#write(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
    this.written++;
  }

  async close(): Promise<void> {
    try {
      await this.#file.sync();
    } catch (e) {
      throw diskFullOr(e, this.path);
    } finally {
      this.#file.close();
    }
  }
}

/** Reads a raw folder and writes the patch folder; see the module documentation. */
export async function preparePatches(options: PrepareOptions): Promise<PrepareResult> {
  const t0 = performance.now();
  const o = checkedOptions(options);
  const outExists = await nonEmpty(o.outDir); // refuse to overwrite before any work is done
  if (outExists && !o.force) {
    throw new DataError(`output folder ${o.outDir} exists and is not empty; pass --force to replace it`);
  }
  const r = o.mf6 ? await mf6Series(o, o.mf6) : await csvSeries(o);
  try {
    warnShortSeries(r.steps);
    return await writePatches(o, r, outExists, t0);
  } finally {
    r.close();
  }
}

/** A series training will refuse (too short for one training and one validation window) is said at once. */
function warnShortSeries(steps: number): void {
  try {
    chooseWindows(steps);
  } catch (e) {
    if (!(e instanceof DataError)) throw e;
    console.warn(`warning: ${e.message}; the patches are written, but training will refuse them`);
  }
}

/** Clusters the nodes, then writes every patch's files step by step into a new folder that replaces `outDir`. */
async function writePatches(
  o: Prepared,
  r: RawSeries,
  outExists: boolean,
  t0: number,
): Promise<PrepareResult> {
  const tc = performance.now();
  const { owner, patchGroup, members } = clusterPatches(o, r);
  const P = patchGroup.length;
  const neighbours = neighbourPatches(o, r, owner, P);
  o.log(`clustered ${r.n} nodes into ${P} patches in ${((performance.now() - tc) / 1000).toFixed(2)} s`);
  const tmpDir = `${o.outDir}.tmp-${Deno.pid}`;
  await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  const madeParents = await missingParents(tmpDir); // removed again if this fails: no empty folder left behind
  await Deno.mkdir(tmpDir, { recursive: true });
  const infos: PatchInfo[] = [];
  const width = Math.max(4, String(P - 1).length);
  const writers: ObsWriter[] = [];
  try {
    for (let p = 0; p < P; p++) {
      const core = members[p], nbs = [...neighbours[p]].sort((a, b) => a - b);
      const ghost = ghostPoints(
        r,
        core,
        nbs,
        members,
        o.nGhostPoints ?? Math.round(o.ghostPointsRatio * core.length),
      );
      const name = `patch_${String(p).padStart(width, "0")}`;
      await Deno.mkdir(`${tmpDir}/${name}`);
      for (const [kind, pts] of [["core", core], ["ghost", ghost]] as const) {
        await writeGeometry(`${tmpDir}/${name}`, kind, pts, r);
        writers.push(
          await ObsWriter.create(`${tmpDir}/${name}/${kind}_obs.npy`, pts, r.steps, o.dtype === "float64"),
        );
      }
      infos.push({
        id: p,
        name,
        group: patchGroup[p],
        core: core.length,
        ghost: ghost.length,
        neighbours: nbs,
      });
    }
    // the grid goes with the patches (predict --vtu draws the cells from it)
    if (o.mf6) {
      const grid = `${tmpDir}/${MF6_GRID_FILE}`;
      writePoint(grid);
      await Deno.copyFile(o.mf6.grid, grid).catch((e) => Promise.reject(diskFullOr(e, grid)));
    }
    // the time steps, one at a time, into every patch
    o.log(`ghost points and geometry written; appending ${r.steps} time steps`);
    const step = o.dtype === "float64" ? new Float64Array(r.n * 3) : new Float32Array(r.n * 3);
    for (let t = 0; t < r.steps; t++) {
      await r.read(t, step);
      for (const w of writers) await w.append(step);
    }
    for (const w of writers.splice(0)) await w.close();
    o.log(`read ${r.steps} time steps of ${r.n} nodes`);
    const meta = {
      format: "gino-gw patches v1",
      ...r.meta,
      nodes: r.n,
      steps: r.steps,
      columns: OBS_COLUMNS,
      options: {
        n_patches: o.nPatches,
        slice_split: o.sliceSplit,
        neighbour_k: o.neighbourK,
        ghost_points_ratio: o.ghostPointsRatio,
        n_ghost_points: o.nGhostPoints ?? null,
        seed: o.seed,
        dtype: o.dtype,
      },
      patches: infos,
    };
    await writeTextFileAtomic(`${tmpDir}/patches.json`, JSON.stringify(meta, null, 1) + "\n");
    // swap in the new folder; the old one is removed only after the new one is in place
    const old = `${o.outDir}.old-${Deno.pid}`;
    if (outExists || (await exists(o.outDir))) await Deno.rename(o.outDir, old);
    await Deno.rename(tmpDir, o.outDir);
    await Deno.remove(old, { recursive: true }).catch(() => {});
  } catch (e) {
    for (const w of writers) await w.close().catch(() => {}); // closed already when a sync failed
    await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
    for (const d of madeParents) await Deno.remove(d).catch(() => {}); // deepest first; only while empty
    throw e;
  }
  const seconds = (performance.now() - t0) / 1000;
  o.log(`wrote ${P} patches to ${o.outDir} in ${seconds.toFixed(2)} s`);
  return { outDir: o.outDir, nodes: r.n, steps: r.steps, patches: infos, seconds };
}

/** The folders above `path` that do not exist yet, deepest first. */
async function missingParents(path: string): Promise<string[]> {
  const out: string[] = [];
  for (let d = path.replace(/\/+$/, "");;) {
    const i = d.lastIndexOf("/");
    if (i <= 0) break;
    d = d.slice(0, i);
    if (await exists(d)) break;
    out.push(d);
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
