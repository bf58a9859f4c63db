/**
 * The `safetensors` format (the format PyTorch users share weights in): an 8-byte little-endian header length, a
 * JSON header naming each tensor's dtype, shape and byte range (plus optional string metadata), then the raw
 * little-endian tensor bytes.
 *
 * @module
 */

import { ToolError } from "../errors.ts";
import { writeFileAtomic } from "./atomic.ts";

/** Element types of safetensors this module reads and writes. */
export type SafeDtype = "F32" | "F64" | "I32" | "I64" | "U8" | "I8" | "I16" | "F16" | "BF16" | "BOOL";

/** One tensor: dtype name, shape, and the elements (a typed array; F16/BF16/BOOL as raw bytes). */
export interface SafeTensor {
  /** Element type name (safetensors dtype, e.g. F32). */
  dtype: string;
  /** Shape (C order). */
  shape: number[];
  /** The elements, C order. */
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Int8Array | Int16Array | Uint8Array;
}

/** Contents of a safetensors file. */
export interface SafetensorsFile {
  /** Tensors by name, in file order. */
  tensors: Record<string, SafeTensor>;
  /** The `__metadata__` strings (empty when absent). */
  metadata: Record<string, string>;
}

/** A malformed, truncated or unreadable safetensors file; the message names the file and the problem. */
export class SafetensorsError extends ToolError {
  /** An error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "SafetensorsError";
  }
}

const ITEM: Record<string, number> = {
  F32: 4,
  F64: 8,
  I32: 4,
  I64: 8,
  U8: 1,
  I8: 1,
  I16: 2,
  F16: 2,
  BF16: 2,
  BOOL: 1,
};

function typed(dtype: string, bytes: Uint8Array, count: number): SafeTensor["data"] {
  // copy into a fresh, aligned buffer
  const buf = bytes.slice().buffer;
  switch (dtype) {
    case "F32":
      return new Float32Array(buf, 0, count);
    case "F64":
      return new Float64Array(buf, 0, count);
    case "I32":
      return new Int32Array(buf, 0, count);
    case "I64":
      return new BigInt64Array(buf, 0, count);
    case "I8":
      return new Int8Array(buf, 0, count);
    case "I16":
      return new Int16Array(buf, 0, count);
    default:
      return new Uint8Array(buf);
  }
}

function dtypeOf(data: SafeTensor["data"], declared?: string): string {
  if (declared) return declared;
  if (data instanceof Float32Array) return "F32";
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof Int8Array) return "I8";
  if (data instanceof Int16Array) return "I16";
  return "U8";
}

/** Parses safetensors bytes. `name` is used in error messages. */
export function decodeSafetensors(bytes: Uint8Array, name = "safetensors data"): SafetensorsFile {
  if (bytes.length < 8) throw new SafetensorsError(`${name}: truncated (${bytes.length} bytes, no header)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen < 2 || headerLen > 100_000_000 || 8 + headerLen > bytes.length) {
    throw new SafetensorsError(
      `${name}: bad header length ${headerLen} for a file of ${bytes.length} bytes (not a safetensors file, or truncated)`,
    );
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new SafetensorsError(`${name}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${name}: header is not a JSON object`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors: Record<string, SafeTensor> = {};
  let metadata: Record<string, string> = {};
  const ranges: [number, number, string][] = [];
  for (const [key, value] of Object.entries(header)) {
    if (key === "__metadata__") {
      metadata = value as Record<string, string>;
      continue;
    }
    const info = value as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (
      !info || typeof info.dtype !== "string" || !Array.isArray(info.shape) ||
      !Array.isArray(info.data_offsets)
    ) {
      throw new SafetensorsError(`${name}: tensor '${key}' has an invalid header entry`);
    }
    const item = ITEM[info.dtype];
    if (!item) throw new SafetensorsError(`${name}: tensor '${key}' has unsupported dtype ${info.dtype}`);
    const [begin, end] = info.data_offsets;
    const count = info.shape.reduce((a, b) => a * b, 1);
    if (!(Number.isInteger(begin) && Number.isInteger(end) && begin >= 0 && end >= begin)) {
      throw new SafetensorsError(`${name}: tensor '${key}' has invalid data offsets [${begin}, ${end}]`);
    }
    if (end - begin !== count * item) {
      throw new SafetensorsError(
        `${name}: tensor '${key}' (${info.dtype} [${info.shape.join(", ")}]) needs ${
          count * item
        } bytes but its offsets span ${end - begin}`,
      );
    }
    if (end > dataLen) {
      throw new SafetensorsError(
        `${name}: truncated: tensor '${key}' ends at byte ${end} of the data section, which holds only ${dataLen} bytes`,
      );
    }
    ranges.push([begin, end, key]);
    tensors[key] = {
      dtype: info.dtype,
      shape: info.shape,
      data: typed(info.dtype, bytes.subarray(dataStart + begin, dataStart + end), count),
    };
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      throw new SafetensorsError(`${name}: tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
    }
  }
  return { tensors, metadata };
}

/** Reads a safetensors file. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new SafetensorsError(`${path}: file not found`);
    throw e;
  }
  return decodeSafetensors(bytes, path);
}

/** Encodes tensors (in the given order) and string metadata as safetensors bytes. */
export function encodeSafetensors(
  tensors: Record<string, { dtype?: string; shape: number[]; data: SafeTensor["data"] }>,
  metadata: Record<string, string> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const dtype = dtypeOf(t.data, t.dtype);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count * ITEM[dtype] !== t.data.byteLength) {
      throw new Error(
        `tensor '${name}': shape [${
          t.shape.join(", ")
        }] does not match ${t.data.byteLength} bytes of ${dtype}`,
      );
    }
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const pad = (8 - ((json.length + 8) % 8)) % 8;
  json += " ".repeat(pad);
  const hb = new TextEncoder().encode(json);
  // pad again if multi-byte characters changed the length
  const headerBytes = hb.length % 8 === 0
    ? hb
    : new TextEncoder().encode(json + " ".repeat((8 - (hb.length % 8)) % 8));
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temporary file, fsync, rename). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, { dtype?: string; shape: number[]; data: SafeTensor["data"] }>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
