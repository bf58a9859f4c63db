/**
 * MODFLOW 6 binary files (mf6io, "Binary Grid File" and "Dependent Variable Output File"): the grid file (`.grb`)
 * of a DIS, DISV or DISU discretisation, turned into cell centres, layers, tops and bottoms and cell outlines in
 * world coordinates (the grid's origin and rotation applied); and the dependent-variable files (heads `.hds`,
 * concentrations `.ucn`), indexed record by record and read one saved time step at a time, so a model of any
 * length streams through in the memory of one step.
 *
 * Grid file: four 50-character lines (`GRID DIS`, `VERSION 1`, `NTXT n`, `LENTXT m`), n definition lines of m
 * characters (`NAME INTEGER|DOUBLE NDIM k dims...`), then the values in that order (int32 / float64, little
 * endian). Output file: per record KSTP, KPER (int32), PERTIM, TOTIM (float64; float32 in single-precision
 * files), a 16-character TEXT, NCOL, NROW, ILAY (int32), then NCOL x NROW values: one layer per record for DIS
 * and DISV (NCOL x NROW or NCPL x 1), all nodes in one record for DISU. HNOFLO / HDRY (|value| >= 1e30) mark
 * cells without a value.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** A MODFLOW 6 file that cannot be read as one; the message names the file and the record. */
export class Mf6Error extends ToolError {
  /** An error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "Mf6Error";
  }
}

/** A discretisation read from a binary grid file, in world coordinates. */
export interface Mf6Grid {
  /** The grid file. */
  path: string;
  /** Discretisation type. */
  type: "DIS" | "DISV" | "DISU";
  /** The model's coordinate reference system (the grid file's CRS item, e.g. `EPSG:26916`), where it names one. */
  crs?: string;
  /** Cells (MODFLOW 6 user node numbers are 1 ... ncells). */
  ncells: number;
  /** Layers (1 for DISU). */
  nlay: number;
  /** Cells per layer. */
  ncpl: number;
  /** Rows (DIS only). */
  nrow?: number;
  /** Columns (DIS only). */
  ncol?: number;
  /** Whether each cell is active (IDOMAIN > 0; all cells when the file has no IDOMAIN). */
  active: Uint8Array;
  /** Cell centres along x, world coordinates [ncells]. */
  x: Float64Array;
  /** Cell centres along y. */
  y: Float64Array;
  /** Cell centres along z (between top and bottom). */
  z: Float64Array;
  /** Layer of each cell, 1-based. */
  layer: Int32Array;
  /** Top elevation of each cell. */
  top: Float64Array;
  /** Bottom elevation of each cell. */
  bot: Float64Array;
  /**
   * The outline of each cell in plan view, world coordinates, clockwise seen from above (as MODFLOW 6 lists them):
   * the vertex numbers of cell-in-layer c are `vert[vstart[c] .. vstart[c + 1])` into `vx`, `vy`. Absent for a
   * DISU grid without vertices.
   */
  outline?: { vx: Float64Array; vy: Float64Array; vstart: Int32Array; vert: Int32Array };
}

/** A grid file item: a scalar, an array of integers or doubles, or a character string (e.g. the CRS). */
export type GrbValue = number | Int32Array | Float64Array | string;

/** The named items of a grid file, as stored. */
export async function readGrbItems(path: string): Promise<{ type: string; items: Map<string, GrbValue> }> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Mf6Error(`MODFLOW 6 grid file not found: ${path}`);
    throw e;
  }
  const text = (from: number, len: number) =>
    new TextDecoder("latin1").decode(bytes.subarray(from, from + len));
  if (bytes.length < 200 || !text(0, 4).startsWith("GRID")) {
    throw new Mf6Error(`${path} is not a MODFLOW 6 binary grid file (it does not start with 'GRID')`);
  }
  const line = (i: number) => text(50 * i, 50).trim().split(/\s+/);
  const type = line(0)[1];
  const ntxt = Number(line(2)[1]), lentxt = Number(line(3)[1]);
  if (!(ntxt > 0) || !(lentxt > 0) || 200 + ntxt * lentxt > bytes.length) {
    throw new Mf6Error(`${path}: the grid file's header is damaged (NTXT ${ntxt}, LENTXT ${lentxt})`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 200 + ntxt * lentxt;
  const items = new Map<string, GrbValue>();
  for (let i = 0; i < ntxt; i++) {
    const def = text(200 + i * lentxt, lentxt).split("#")[0].trim().split(/\s+/);
    const [name, kind, , ndimS, ...dims] = def;
    const ndim = Number(ndimS);
    const count = ndim === 0 ? 1 : dims.slice(0, ndim).reduce((a, d) => a * Number(d), 1);
    // the item types MODFLOW 6 writes: 4-byte integers, 8-byte doubles, characters (one byte each)
    const size = kind === "DOUBLE" ? 8 : kind === "INTEGER" ? 4 : kind === "CHARACTER" ? 1 : 0;
    if (!(count >= 0) || !Number.isInteger(count) || size === 0) {
      throw new Mf6Error(
        `${path}: definition line ${i + 1} ('${def.join(" ")}') is not understood` +
          (size === 0 && kind
            ? ` (item type ${kind}; MODFLOW 6 grid files hold INTEGER, DOUBLE and CHARACTER items)`
            : ""),
      );
    }
    if (at + count * size > bytes.length) {
      throw new Mf6Error(
        `${path}: the file ends inside ${name} (${count} values from byte ${at}, file ${bytes.length} bytes): ` +
          `the grid file is truncated`,
      );
    }
    if (kind === "CHARACTER") items.set(name, text(at, count).trim());
    else if (ndim === 0) {
      items.set(name, kind === "DOUBLE" ? view.getFloat64(at, true) : view.getInt32(at, true));
    } else if (kind === "DOUBLE") {
      const a = new Float64Array(count);
      for (let k = 0; k < count; k++) a[k] = view.getFloat64(at + 8 * k, true);
      items.set(name, a);
    } else {
      const a = new Int32Array(count);
      for (let k = 0; k < count; k++) a[k] = view.getInt32(at + 4 * k, true);
      items.set(name, a);
    }
    at += count * size;
  }
  return { type, items };
}

/** Reads a MODFLOW 6 binary grid file (DIS, DISV or DISU); see {@linkcode Mf6Grid}. */
export async function readMf6Grid(path: string): Promise<Mf6Grid> {
  const { type, items } = await readGrbItems(path);
  const num = (k: string) => {
    const v = items.get(k);
    if (typeof v !== "number") throw new Mf6Error(`${path}: the ${type} grid file has no ${k}`);
    return v;
  };
  const arr = <T extends Int32Array | Float64Array>(
    k: string,
    n: number,
    optional = false,
  ): T | undefined => {
    const v = items.get(k);
    if (v === undefined && optional) return undefined;
    if (typeof v === "number" || typeof v === "string" || v === undefined) {
      throw new Mf6Error(`${path}: the ${type} grid file has no ${k}`);
    }
    if (v.length !== n) throw new Mf6Error(`${path}: ${k} holds ${v.length} values, the grid needs ${n}`);
    return v as T;
  };
  const x0 = num("XORIGIN"), y0 = num("YORIGIN"), rot = (num("ANGROT") * Math.PI) / 180;
  const [cr, sr] = [Math.cos(rot), Math.sin(rot)];
  const world = (x: number, y: number): [number, number] => [x0 + x * cr - y * sr, y0 + x * sr + y * cr];
  let ncells: number, nlay: number, ncpl: number;
  let cx: Float64Array, cy: Float64Array, top: Float64Array, botm: Float64Array;
  let outline: Mf6Grid["outline"];
  let nrow: number | undefined, ncol: number | undefined;
  if (type === "DIS") {
    ncells = num("NCELLS");
    nlay = num("NLAY");
    nrow = num("NROW");
    ncol = num("NCOL");
    ncpl = nrow * ncol;
    if (nlay * ncpl !== ncells) throw new Mf6Error(`${path}: NLAY x NROW x NCOL is not NCELLS`);
    const delr = arr<Float64Array>("DELR", ncol)!, delc = arr<Float64Array>("DELC", nrow)!;
    top = arr<Float64Array>("TOP", ncpl)!;
    botm = arr<Float64Array>("BOTM", ncells)!;
    const xe = new Float64Array(ncol + 1), ye = new Float64Array(nrow + 1);
    for (let j = 0; j < ncol; j++) xe[j + 1] = xe[j] + delr[j];
    const ytot = delc.reduce((a, b) => a + b, 0);
    ye[0] = ytot;
    for (let i = 0; i < nrow; i++) ye[i + 1] = ye[i] - delc[i]; // row 1 is the northernmost
    cx = new Float64Array(ncpl);
    cy = new Float64Array(ncpl);
    // corner (i, j) of the (nrow + 1) x (ncol + 1) lattice; each cell lists its corners clockwise from above
    const vx = new Float64Array((nrow + 1) * (ncol + 1)), vy = new Float64Array(vx.length);
    for (let i = 0; i <= nrow; i++) {
      for (let j = 0; j <= ncol; j++) [vx[i * (ncol + 1) + j], vy[i * (ncol + 1) + j]] = world(xe[j], ye[i]);
    }
    const vstart = new Int32Array(ncpl + 1), vert = new Int32Array(4 * ncpl);
    for (let i = 0; i < nrow; i++) {
      for (let j = 0; j < ncol; j++) {
        const c = i * ncol + j, k = i * (ncol + 1) + j;
        cx[c] = (xe[j] + xe[j + 1]) / 2;
        cy[c] = (ye[i] + ye[i + 1]) / 2;
        vert.set([k, k + 1, k + ncol + 2, k + ncol + 1], 4 * c);
        vstart[c + 1] = 4 * (c + 1);
      }
    }
    outline = { vx, vy, vstart, vert };
  } else if (type === "DISV") {
    ncells = num("NCELLS");
    nlay = num("NLAY");
    ncpl = num("NCPL");
    if (nlay * ncpl !== ncells) throw new Mf6Error(`${path}: NLAY x NCPL is not NCELLS`);
    top = arr<Float64Array>("TOP", ncpl)!;
    botm = arr<Float64Array>("BOTM", ncells)!;
    cx = arr<Float64Array>("CELLX", ncpl)!;
    cy = arr<Float64Array>("CELLY", ncpl)!;
    outline = outlineOf(path, items, ncpl, world);
  } else if (type === "DISU") {
    ncells = num("NODES");
    nlay = 1;
    ncpl = ncells;
    top = arr<Float64Array>("TOP", ncells)!;
    botm = arr<Float64Array>("BOT", ncells)!;
    const ux = arr<Float64Array>("CELLX", ncells, true), uy = arr<Float64Array>("CELLY", ncells, true);
    if (!ux || !uy) {
      throw new Mf6Error(
        `${path}: this DISU grid file has no cell centres (CELLX, CELLY): give the DISU package VERTICES and ` +
          `CELL2D so that MODFLOW 6 writes them, then run the model again`,
      );
    }
    cx = ux;
    cy = uy;
    if (items.has("VERTICES")) outline = outlineOf(path, items, ncells, world);
  } else {
    throw new Mf6Error(`${path}: grid type '${type}' is not supported (DIS, DISV and DISU are)`);
  }
  const idomain = arr<Int32Array>("IDOMAIN", ncells, true);
  const crs = items.get("CRS");
  const g: Mf6Grid = {
    path,
    type,
    crs: typeof crs === "string" && crs ? crs : undefined,
    ncells,
    nlay,
    ncpl,
    nrow,
    ncol,
    active: new Uint8Array(ncells),
    x: new Float64Array(ncells),
    y: new Float64Array(ncells),
    z: new Float64Array(ncells),
    layer: new Int32Array(ncells),
    top: new Float64Array(ncells),
    bot: new Float64Array(ncells),
    outline,
  };
  for (let n = 0; n < ncells; n++) {
    const k = Math.floor(n / ncpl), c = n - k * ncpl;
    const t = type === "DISU" ? top[n] : k === 0 ? top[c] : botm[n - ncpl];
    const b = botm[n];
    [g.x[n], g.y[n]] = world(cx[c], cy[c]);
    g.z[n] = (t + b) / 2;
    g.top[n] = t;
    g.bot[n] = b;
    g.layer[n] = k + 1;
    g.active[n] = idomain ? (idomain[n] > 0 ? 1 : 0) : 1;
  }
  return g;
}

/**
 * Cell outlines of a DISV (or DISU with vertices) grid: IAVERT/JAVERT are 1-based; a closing repeat is dropped.
 * The vertex count is NVERT where the file has it (DISV); a DISU grid file has none: VERTICES holds x, y pairs.
 */
function outlineOf(
  path: string,
  items: Map<string, GrbValue>,
  ncpl: number,
  world: (x: number, y: number) => [number, number],
): Mf6Grid["outline"] {
  const v = items.get("VERTICES"), ia = items.get("IAVERT"), ja = items.get("JAVERT");
  if (!(v instanceof Float64Array) || !(ia instanceof Int32Array) || !(ja instanceof Int32Array)) {
    throw new Mf6Error(`${path}: the grid file lacks VERTICES, IAVERT or JAVERT`);
  }
  const nv = items.get("NVERT");
  const nvert = typeof nv === "number" ? nv : v.length / 2;
  if (v.length !== 2 * nvert || ia.length !== ncpl + 1) {
    throw new Mf6Error(
      `${path}: VERTICES (${v.length} values) or IAVERT (${ia.length}) do not match ${nvert} vertices and ` +
        `${ncpl} cells per layer`,
    );
  }
  const vx = new Float64Array(nvert), vy = new Float64Array(nvert);
  for (let i = 0; i < nvert; i++) [vx[i], vy[i]] = world(v[2 * i], v[2 * i + 1]);
  const vstart = new Int32Array(ncpl + 1);
  const vert: number[] = [];
  for (let c = 0; c < ncpl; c++) {
    const list = Array.from(ja.subarray(ia[c] - 1, ia[c + 1] - 1), (k) => k - 1);
    if (list.length > 1 && list[0] === list[list.length - 1]) list.pop();
    if (list.length < 3 || list.some((k) => k < 0 || k >= nvert)) {
      throw new Mf6Error(`${path}: cell ${c + 1} has a bad vertex list (JAVERT)`);
    }
    vert.push(...list);
    vstart[c + 1] = vert.length;
  }
  return { vx, vy, vstart, vert: Int32Array.from(vert) };
}

/** One record of a dependent-variable file. */
export interface Mf6Record {
  /** Time step within the stress period. */
  kstp: number;
  /** Stress period. */
  kper: number;
  /** Time within the period. */
  pertim: number;
  /** Simulation time. */
  totim: number;
  /** Label (HEAD, CONCENTRATION). */
  text: string;
  /** Values per row (columns, or cells per layer, or all nodes). */
  ncol: number;
  /** Rows. */
  nrow: number;
  /** Layer (1-based). */
  ilay: number;
  /** Byte offset of its values. */
  offset: number;
}

/** One saved time step: its records (one per layer, or one for all nodes). */
export interface Mf6Step {
  /** Time step within the stress period. */
  kstp: number;
  /** Stress period. */
  kper: number;
  /** Simulation time. */
  totim: number;
  /** Its records. */
  records: Mf6Record[];
}

/** A dependent-variable file (heads, concentrations), indexed; its steps are read one at a time. */
export class Mf6OutputFile {
  #file?: Deno.FsFile;
  #buf = new Uint8Array(0);

  private constructor(
    readonly path: string,
    readonly text: string,
    readonly precision: 4 | 8,
    readonly steps: Mf6Step[],
    readonly grid: Mf6Grid,
  ) {}

  /** Indexes `path` (reads every record header, not the values) and checks it against `grid`. */
  static async open(path: string, grid: Mf6Grid): Promise<Mf6OutputFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new Mf6Error(`MODFLOW 6 output file not found: ${path}`);
      throw e;
    }
    try {
      const size = (await file.stat()).size;
      const head = new Uint8Array(52);
      await refuseGridFile(file, path);
      const precision = await detectPrecision(file, path, size);
      const hsize = precision === 8 ? 52 : 44;
      const records: Mf6Record[] = [];
      let at = 0;
      while (at < size) {
        if (at + hsize > size) {
          throw new Mf6Error(
            `${path}: record ${records.length + 1} is cut short: the file ends ${size - at} bytes into its ` +
              `${hsize}-byte header (truncated file)`,
          );
        }
        await file.seek(at, Deno.SeekMode.Start);
        await readFull(file, head.subarray(0, hsize));
        const r = parseHeader(head, precision, at + hsize);
        const bytes = r.ncol * r.nrow * precision;
        if (!(r.ncol > 0 && r.nrow > 0) || r.ncol * r.nrow > grid.ncells) {
          throw new Mf6Error(
            `${path}: record ${records.length + 1} (time step ${r.kstp} of period ${r.kper}) holds ` +
              `${r.ncol} x ${r.nrow} values, which does not fit the grid of ${grid.path} (${grid.ncells} cells)`,
          );
        }
        if (r.offset + bytes > size) {
          throw new Mf6Error(
            `${path}: record ${
              records.length + 1
            } (time step ${r.kstp} of period ${r.kper}, layer ${r.ilay}) ` +
              `is cut short: the file ends ${size - r.offset} bytes into its ${bytes} bytes of values ` +
              `(truncated file)`,
          );
        }
        records.push(r);
        at = r.offset + bytes;
      }
      if (records.length === 0) throw new Mf6Error(`${path} holds no records`);
      const steps = groupSteps(path, records, grid);
      return new Mf6OutputFile(path, records[0].text, precision, steps, grid);
    } finally {
      file.close();
    }
  }

  /** Reads step `i` into `out` [ncells] (values of |v| >= 1e30, MODFLOW 6's no-value flags, become NaN). */
  async readStep(i: number, out: Float64Array): Promise<void> {
    this.#file ??= await Deno.open(this.path, { read: true });
    const g = this.grid, p = this.precision;
    for (const r of this.steps[i].records) {
      const n = r.ncol * r.nrow;
      if (this.#buf.length < n * p) this.#buf = new Uint8Array(n * p);
      const buf = this.#buf.subarray(0, n * p);
      await this.#file.seek(r.offset, Deno.SeekMode.Start);
      await readFull(this.#file, buf);
      const start = n === g.ncells ? 0 : (r.ilay - 1) * g.ncpl;
      // the buffer starts at byte 0 of its own ArrayBuffer, so typed views are aligned
      const vals = LITTLE_ENDIAN
        ? (p === 8 ? new Float64Array(buf.buffer, 0, n) : new Float32Array(buf.buffer, 0, n))
        : valuesLE(buf, n, p);
      for (let k = 0; k < n; k++) {
        const v = vals[k];
        out[start + k] = Math.abs(v) >= 1e30 ? NaN : v;
      }
    }
  }

  /** Closes the file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** True on little-endian hosts (typed arrays then read MODFLOW 6's little-endian values directly). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian float values of `buf` on a big-endian host. */
function valuesLE(buf: Uint8Array, n: number, p: 4 | 8): Float64Array {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Float64Array.from(
    { length: n },
    (_, k) => (p === 8 ? view.getFloat64(8 * k, true) : view.getFloat32(4 * k, true)),
  );
}

/** `values` as little-endian float64 bytes. */
function float64LE(values: ArrayLike<number>): Float64Array {
  const out = new Float64Array(values.length);
  if (LITTLE_ENDIAN) {
    out.set(values);
    return out;
  }
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat64(8 * i, values[i], true);
  return out;
}

async function readFull(file: Deno.FsFile, buf: Uint8Array): Promise<void> {
  let got = 0;
  while (got < buf.length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) throw new Error("unexpected end of file");
    got += n;
  }
}

const printable = (b: Uint8Array) => b.every((c) => c >= 32 && c < 127);

/** A grid file given where a heads or concentration file belongs: says so, instead of reading garbage headers. */
async function refuseGridFile(file: Deno.FsFile, path: string): Promise<void> {
  const h = new Uint8Array(50);
  await file.seek(0, Deno.SeekMode.Start);
  const n = (await file.read(h)) ?? 0;
  await file.seek(0, Deno.SeekMode.Start);
  const text = new TextDecoder("latin1").decode(h.subarray(0, n));
  if (/^GRID (DIS|DISV|DISU)\b/.test(text)) {
    throw new Mf6Error(
      `${path} is a MODFLOW 6 binary grid file (${
        text.trim().split(/\s+/).slice(0, 2).join(" ")
      }), not a heads ` +
        `or concentration file: give it to --mf6-grid, and the model's .hds (.ucn) file to --mf6-heads (--mf6-conc)`,
    );
  }
}

/** Double precision unless the header only makes sense as single precision. */
async function detectPrecision(file: Deno.FsFile, path: string, size: number): Promise<4 | 8> {
  const h = new Uint8Array(Math.min(52, size));
  await readFull(file, h);
  if (h.length >= 52 && printable(h.subarray(24, 40))) return 8;
  if (h.length >= 44 && printable(h.subarray(16, 32))) return 4;
  throw new Mf6Error(
    `${path} is not a MODFLOW 6 dependent-variable file (heads .hds or concentrations .ucn): its first record ` +
      `has no text label`,
  );
}

function parseHeader(h: Uint8Array, p: 4 | 8, offset: number): Mf6Record {
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  const t = p === 8 ? 24 : 16;
  return {
    kstp: v.getInt32(0, true),
    kper: v.getInt32(4, true),
    pertim: p === 8 ? v.getFloat64(8, true) : v.getFloat32(8, true),
    totim: p === 8 ? v.getFloat64(16, true) : v.getFloat32(12, true),
    text: new TextDecoder("latin1").decode(h.subarray(t, t + 16)).trim(),
    ncol: v.getInt32(t + 16, true),
    nrow: v.getInt32(t + 20, true),
    ilay: v.getInt32(t + 24, true),
    offset,
  };
}

/** Groups records into time steps: each step holds every layer once (or all nodes in one record). */
function groupSteps(path: string, records: Mf6Record[], grid: Mf6Grid): Mf6Step[] {
  const steps: Mf6Step[] = [];
  for (const r of records) {
    const last = steps[steps.length - 1];
    if (last && last.kstp === r.kstp && last.kper === r.kper && last.records[0].text === r.text) {
      last.records.push(r);
    } else steps.push({ kstp: r.kstp, kper: r.kper, totim: r.totim, records: [r] });
  }
  for (const [i, s] of steps.entries()) {
    const where = `${path}: time step ${s.kstp} of period ${s.kper} (step ${i + 1} in the file)`;
    const n = s.records.reduce((a, r) => a + r.ncol * r.nrow, 0);
    // DISU: all nodes in one record; DIS and DISV: one record per layer, of the layer's shape
    if (grid.type === "DISU" && s.records.length === 1 && n === grid.ncells) continue;
    const layers = s.records.map((r) => r.ilay).sort((a, b) => a - b);
    const perLayer = s.records.every((r) => r.ncol * r.nrow === grid.ncpl);
    // a layer's record has the grid's own shape: NCOL x NROW of a DIS grid, NCPL x 1 of a DISV grid
    const [wantCol, wantRow] = grid.type === "DIS" ? [grid.ncol!, grid.nrow!] : [grid.ncpl, 1];
    const bad = perLayer ? s.records.find((r) => r.ncol !== wantCol || r.nrow !== wantRow) : undefined;
    if (bad) {
      throw new Mf6Error(
        `${where}: the record of layer ${bad.ilay} is ${bad.ncol} columns x ${bad.nrow} rows, but the ${grid.type} ` +
          `grid ${grid.path} has ${wantCol} x ${wantRow} cells per layer: the grid and output files are of ` +
          `different models`,
      );
    }
    const prefix = layers.every((l, k) => l === k + 1);
    if (perLayer && prefix && layers.length < grid.nlay && i === steps.length - 1 && i > 0) {
      // every earlier step is whole: the file stops between two records of its last step
      throw new Mf6Error(
        `${where} is incomplete: it holds layer(s) ${layers.join(", ")} of the ${grid.nlay} the grid ` +
          `${grid.path} has, and the file ends there, between two records (truncated file: the simulation ` +
          `stopped while writing it, or the copy is incomplete; run the model again or copy the whole file)`,
      );
    }
    if (!perLayer || layers.length !== grid.nlay || !prefix) {
      throw new Mf6Error(
        `${where} holds ${s.records.length} record(s) of ${
          s.records.map((r) => r.ncol * r.nrow).join(", ")
        } ` +
          `values for layer(s) ${
            layers.join(", ")
          }, but the grid ${grid.path} has ${grid.nlay} layer(s) of ` +
          `${grid.ncpl} cells (${grid.ncells} in all): the grid and output files are of different models`,
      );
    }
  }
  return steps;
}

/**
 * One item of a grid file to write: name, type and value (a scalar, an array with its dimensions, or for a
 * CHARACTER item a string such as the CRS).
 */
export type GrbItem =
  | [string, "INTEGER" | "DOUBLE", number | ArrayLike<number>, number[]?]
  | [string, "CHARACTER", string];

/** The bytes of a MODFLOW 6 binary grid file of `type` with `items` (in the order MODFLOW 6 writes them). */
export function encodeGrb(type: "DIS" | "DISV" | "DISU", items: GrbItem[]): Uint8Array {
  const pad = (s: string, n: number) => s.padEnd(n, " ").slice(0, n);
  const lentxt = 100;
  let text = pad(`GRID ${type}`, 50) + pad("VERSION 1", 50) + pad(`NTXT ${items.length}`, 50) +
    pad(`LENTXT ${lentxt}`, 50);
  let bytes = 0;
  for (const [name, kind, v, dims] of items) {
    if (kind === "CHARACTER") {
      text += pad(`${name} CHARACTER NDIM 1 ${(v as string).length}`, lentxt);
      bytes += (v as string).length;
    } else if (typeof v === "number") {
      text += pad(`${name} ${kind} NDIM 0 # ${v}`, lentxt);
      bytes += kind === "DOUBLE" ? 8 : 4;
    } else {
      const a = v as ArrayLike<number>, d = dims ?? [a.length];
      text += pad(`${name} ${kind} NDIM ${d.length} ${d.join(" ")}`, lentxt);
      bytes += a.length * (kind === "DOUBLE" ? 8 : 4);
    }
  }
  const out = new Uint8Array(text.length + bytes);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  const view = new DataView(out.buffer);
  let at = text.length;
  for (const [, kind, v] of items) {
    if (kind === "CHARACTER") {
      for (const ch of v as string) out[at++] = ch.charCodeAt(0);
      continue;
    }
    const list = typeof v === "number" ? [v] : v as ArrayLike<number>;
    for (let i = 0; i < list.length; i++) {
      if (kind === "DOUBLE") {
        view.setFloat64(at, list[i], true);
        at += 8;
      } else {
        view.setInt32(at, list[i], true);
        at += 4;
      }
    }
  }
  return out;
}

/** The grid file items of a DIS grid (connectivity IA/JA, IDOMAIN 1, ICELLTYPE 0, no rotation by default). */
export function disItems(
  g: { nlay: number; nrow: number; ncol: number; delr: ArrayLike<number>; delc: ArrayLike<number> },
  top: ArrayLike<number>,
  botm: ArrayLike<number>,
  origin: { x?: number; y?: number; angrot?: number } = {},
): GrbItem[] {
  const { nlay, nrow, ncol } = g;
  const n = nlay * nrow * ncol;
  const ia = new Int32Array(n + 1), ja: number[] = [];
  for (let k = 0; k < nlay; k++) {
    for (let i = 0; i < nrow; i++) {
      for (let j = 0; j < ncol; j++) {
        const c = (k * nrow + i) * ncol + j;
        const nb = [
          k > 0 ? c - nrow * ncol : -1,
          i > 0 ? c - ncol : -1,
          j > 0 ? c - 1 : -1,
          j + 1 < ncol ? c + 1 : -1,
          i + 1 < nrow ? c + ncol : -1,
          k + 1 < nlay ? c + nrow * ncol : -1,
        ].filter((v) => v >= 0);
        ja.push(c + 1, ...nb.map((v) => v + 1));
        ia[c + 1] = ja.length;
      }
    }
  }
  for (let c = 0; c <= n; c++) ia[c] += 1; // 1-based
  ia[0] = 1;
  return [
    ["NCELLS", "INTEGER", n],
    ["NLAY", "INTEGER", nlay],
    ["NROW", "INTEGER", nrow],
    ["NCOL", "INTEGER", ncol],
    ["NJA", "INTEGER", ja.length],
    ["XORIGIN", "DOUBLE", origin.x ?? 0],
    ["YORIGIN", "DOUBLE", origin.y ?? 0],
    ["ANGROT", "DOUBLE", origin.angrot ?? 0],
    ["DELR", "DOUBLE", g.delr],
    ["DELC", "DOUBLE", g.delc],
    ["TOP", "DOUBLE", top],
    ["BOTM", "DOUBLE", botm],
    ["IA", "INTEGER", ia],
    ["JA", "INTEGER", ja],
    ["IDOMAIN", "INTEGER", new Int32Array(n).fill(1)],
    ["ICELLTYPE", "INTEGER", new Int32Array(n)],
  ];
}

/** Appends records to a dependent-variable file in MODFLOW 6's layout (double precision). */
export class Mf6OutputWriter {
  #file: Deno.FsFile;
  private constructor(file: Deno.FsFile, readonly text: string) {
    this.#file = file;
  }

  /** Creates (or truncates) `path`; `text` is the record label (`HEAD`, `CONCENTRATION`). */
  static async create(path: string, text: string): Promise<Mf6OutputWriter> {
    return new Mf6OutputWriter(await Deno.open(path, { write: true, create: true, truncate: true }), text);
  }

  /** Writes one record: `values` [ncol x nrow] of layer `ilay` (or all nodes with ilay 1). */
  async record(
    r: {
      kstp: number;
      kper: number;
      pertim: number;
      totim: number;
      ncol: number;
      nrow: number;
      ilay: number;
    },
    values: ArrayLike<number>,
  ): Promise<void> {
    const out = new Uint8Array(52);
    const v = new DataView(out.buffer);
    v.setInt32(0, r.kstp, true);
    v.setInt32(4, r.kper, true);
    v.setFloat64(8, r.pertim, true);
    v.setFloat64(16, r.totim, true);
    const t = this.text.padEnd(16, " ").slice(0, 16);
    for (let i = 0; i < 16; i++) out[24 + i] = t.charCodeAt(i);
    v.setInt32(40, r.ncol, true);
    v.setInt32(44, r.nrow, true);
    v.setInt32(48, r.ilay, true);
    const data = values instanceof Float64Array && LITTLE_ENDIAN ? values : float64LE(values);
    await this.#write(out);
    await this.#write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  async #write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.length) at += await this.#file.write(bytes.subarray(at));
  }

  /** Flushes to disk and closes. */
  async close(): Promise<void> {
    await this.#file.sync();
    this.#file.close();
  }
}
