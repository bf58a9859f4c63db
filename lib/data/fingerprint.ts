/**
 * The data fingerprint of a patch dataset: a fast 64-bit hash of patch names, shapes, coordinates and raw values,
 * stored with a run so that a resume on other data is noticed.
 *
 * @module
 */

import type { RawPatch } from "./patch_reader.ts";

/** The fingerprint of patches read as `raws` (values still shifted, see `patch_reader.ts`). */
export function fingerprint(raws: RawPatch[], shift: Float64Array, targetCols: string[]): string {
  const rawHash = new DataHash();
  for (const r of raws) {
    rawHash.bytes(new Uint8Array(r.values.buffer, r.values.byteOffset, r.values.byteLength));
  }
  const h = new DataHash();
  h.text(JSON.stringify({ cols: targetCols, shift: Array.from(shift) }));
  for (const r of raws) {
    h.text(`${r.name}:${r.nCore}:${r.nGhost}:${r.steps}`);
    h.bytes(new Uint8Array(r.coords.buffer, r.coords.byteOffset, r.coords.byteLength));
  }
  h.text(rawHash.hex());
  return h.hex();
}

/** A fast non-cryptographic 64-bit hash (two 32-bit multiply-xorshift lanes) for data fingerprints. */
export class DataHash {
  #a = 0x811c9dc5;
  #b = 0x9e3779b9;
  /** Adds bytes. */
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
  /** Adds a string (UTF-8). */
  text(s: string): void {
    this.bytes(new TextEncoder().encode(s));
  }
  /** The hash so far, 16 hex digits. */
  hex(): string {
    return this.#a.toString(16).padStart(8, "0") + this.#b.toString(16).padStart(8, "0");
  }
}
