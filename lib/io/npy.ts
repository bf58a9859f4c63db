/**
 * NumPy `.npy` files: read and write format versions 1.0, 2.0 and 3.0, little-endian float32, float64, int32 and
 * int64 arrays in C order (the patch folders of the Python pipeline are made of these).
 *
 * @module
 */

import { ToolError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";

/** The element types this module reads and writes, by NumPy dtype string. */
export type NpyDtype = "<f4" | "<f8" | "<i4" | "<i8";

/** Typed array for each supported dtype. */
export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array;

/** An array read from or written to a `.npy` file. */
export interface NpyArray {
  /** NumPy dtype string, e.g. `<f4`. */
  dtype: NpyDtype;
  /** Shape, C order (last axis fastest). */
  shape: number[];
  /** The elements, C order. */
  data: NpyData;
}

/** An error in a `.npy` file; the message names the file and what is wrong. */
export class NpyError extends ToolError {
  /** An error in the file `path`. */
  constructor(message: string, readonly path: string) {
    super(message);
    this.name = "NpyError";
  }
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const ITEM_SIZE: Record<NpyDtype, number> = { "<f4": 4, "<f8": 8, "<i4": 4, "<i8": 8 };
const DTYPE_ALIASES: Record<string, NpyDtype> = {
  "<f4": "<f4",
  "<f8": "<f8",
  "<i4": "<i4",
  "<i8": "<i8",
  "float32": "<f4",
  "float64": "<f8",
  "int32": "<i4",
  "int64": "<i8",
};

function dtypeOf(data: NpyData): NpyDtype {
  if (data instanceof Float32Array) return "<f4";
  if (data instanceof Float64Array) return "<f8";
  if (data instanceof Int32Array) return "<i4";
  return "<i8";
}

function makeTyped(dtype: NpyDtype, buffer: ArrayBuffer, length: number): NpyData {
  switch (dtype) {
    case "<f4":
      return new Float32Array(buffer, 0, length);
    case "<f8":
      return new Float64Array(buffer, 0, length);
    case "<i4":
      return new Int32Array(buffer, 0, length);
    case "<i8":
      return new BigInt64Array(buffer, 0, length);
  }
}

/** Parses the header dictionary of a `.npy` file. */
function parseHeader(text: string, path: string): { dtype: NpyDtype; shape: number[] } {
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(text)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new NpyError(`${path}: not a valid .npy header: ${text.trim()}`, path);
  }
  if (fortran === "True") {
    throw new NpyError(
      `${path}: Fortran-order arrays are not supported; save it in C order (numpy.ascontiguousarray) and retry`,
      path,
    );
  }
  const dtype = DTYPE_ALIASES[descr === "|f4" ? "<f4" : descr];
  if (!dtype) {
    throw new NpyError(
      `${path}: dtype '${descr}' is not supported (supported: little-endian float32 '<f4', float64 '<f8', ` +
        `int32 '<i4', int64 '<i8'); convert it with array.astype('<f4')`,
      path,
    );
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "").map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new NpyError(`${path}: bad shape (${shapeText}) in the header`, path);
  }
  return { dtype, shape };
}

/**
 * Reads a `.npy` file. The data are read straight into the returned typed array (no second copy).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readNpy } from "./npy.ts";
 * const { shape, data } = await readNpy("tests/fixtures/py_patches/filter_patch/patch_0000/core_obs.npy");
 * assert.ok(shape.length === 3 && shape[2] === 3 && data.length === shape[0] * shape[1] * 3); // [T, Nc, 3]
 * ```
 */
export async function readNpy(path: string): Promise<NpyArray> {
  const file = await openNpy(path);
  try {
    const { dtype, shape, spill } = await readHeader(file, path);
    const length = shape.reduce((a, b) => a * b, 1);
    const nbytes = length * ITEM_SIZE[dtype];
    const buffer = new ArrayBuffer(nbytes);
    const bytes = new Uint8Array(buffer);
    // a header shorter than the 12 bytes already read (never in practice) leaves data bytes in `spill`
    bytes.set(spill.subarray(0, Math.min(spill.length, nbytes)));
    await readExactly(
      file,
      bytes.subarray(Math.min(spill.length, nbytes)),
      path,
      `data of shape (${shape.join(", ")})`,
    );
    const extra = await file.read(new Uint8Array(1));
    if (extra !== null && extra > 0) {
      throw new NpyError(`${path}: file is longer than its header says (shape ${shape.join("x")})`, path);
    }
    return { dtype, shape, data: makeTyped(dtype, buffer, length) };
  } finally {
    file.close();
  }
}

/** The dtype and shape of a `.npy` file, from its header alone (the data are not read). */
export async function readNpyShape(path: string): Promise<{ dtype: NpyDtype; shape: number[] }> {
  const file = await openNpy(path);
  try {
    const { dtype, shape } = await readHeader(file, path);
    return { dtype, shape };
  } finally {
    file.close();
  }
}

async function openNpy(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NpyError(`${path}: file not found`, path);
    throw e;
  }
}

async function readExactly(file: Deno.FsFile, target: Uint8Array, path: string, what: string): Promise<void> {
  let got = 0;
  while (got < target.length) {
    const n = await file.read(target.subarray(got));
    if (n === null) {
      throw new NpyError(
        `${path}: file is truncated (${what}: expected ${target.length} bytes, found ${got})`,
        path,
      );
    }
    got += n;
  }
}

/** Reads the magic bytes and header; returns the dtype, the shape and any data bytes read past the header. */
async function readHeader(
  file: Deno.FsFile,
  path: string,
): Promise<{ dtype: NpyDtype; shape: number[]; spill: Uint8Array }> {
  const pre = new Uint8Array(12);
  let n = 0;
  while (n < 12) {
    const r = await file.read(pre.subarray(n));
    if (r === null) break;
    n += r;
  }
  if (n < 10 || MAGIC.some((m, i) => pre[i] !== m)) {
    throw new NpyError(`${path}: not a .npy file (bad magic bytes)`, path);
  }
  const major = pre[6];
  if (major < 1 || major > 3) throw new NpyError(`${path}: unsupported .npy format version ${major}`, path);
  const view = new DataView(pre.buffer);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const headerBytes = new Uint8Array(headerLen);
  const already = pre.subarray(headerStart, n);
  headerBytes.set(already.subarray(0, Math.min(already.length, headerLen)));
  await readExactly(file, headerBytes.subarray(Math.min(already.length, headerLen)), path, "header");
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(headerBytes);
  return { ...parseHeader(text, path), spill: already.subarray(Math.min(already.length, headerLen)) };
}

/** Encodes an array as the bytes of a `.npy` file (version 1.0, or 2.0 when the header needs it). */
export function encodeNpy(shape: readonly number[], data: NpyData): Uint8Array {
  const length = shape.reduce((a, b) => a * b, 1);
  if (length !== data.length) {
    throw new Error(
      `encodeNpy: shape (${shape.join(", ")}) holds ${length} elements but data has ${data.length}`,
    );
  }
  const header = npyHeader(shape, dtypeOf(data));
  const out = new Uint8Array(header.length + data.byteLength);
  out.set(header);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.length);
  return out;
}

/**
 * The header of a `.npy` file of `shape` and NumPy type `descr` (e.g. `<f4`), padded to 64 bytes: the values
 * follow it in C order (what a writer that streams the values appends).
 */
export function npyHeader(shape: readonly number[], descr: string): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let major = 1;
  let pre = 10;
  if (dict.length + 11 > 65535) {
    major = 2;
    pre = 12;
  }
  const total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  const header = dict + " ".repeat(total - pre - dict.length - 1) + "\n";
  const out = new Uint8Array(total);
  out.set(MAGIC);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  return out;
}

/**
 * Writes a `.npy` file atomically (temporary file in the same folder, fsync, rename).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readNpy, writeNpy } from "./npy.ts";
 * const path = `${await Deno.makeTempDir()}/core_coords.npy`;
 * await writeNpy(path, [2, 3], new Float64Array([0, 0, 0, 1, 1, 1]));
 * assert.ok((await readNpy(path)).shape.join() === "2,3");
 * ```
 */
export async function writeNpy(path: string, shape: readonly number[], data: NpyData): Promise<void> {
  const bytes = encodeNpy(shape, data);
  await writeFileAtomic(path, bytes);
}
