/**
 * Streaming reader for numeric CSV files (FEFLOW / MODFLOW 6 / SEAWAT exports, the raw format of design.md).
 *
 * The file is read in fixed-size blocks and parsed byte by byte, so files of any size are read without
 * loading them whole. Only the requested columns (selected by header name) are converted to numbers.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** An error in a CSV file; the message names the file, the line and the column. */
export class CsvError extends ToolError {
  /** An error in `path` at `line`. */
  constructor(
    message: string,
    /** The file that was being read. */
    readonly path: string,
    /** 1-based line number (the header is line 1), or 0 when the error is not tied to a line. */
    readonly line = 0,
  ) {
    super(message);
    this.name = "CsvError";
  }
}

/** Options of {@linkcode streamNumericCsv} and {@linkcode readNumericCsv}. */
export interface NumericCsvOptions {
  /** Header names of the columns to return, in the order wanted. */
  columns: readonly string[];
  /** Rows per yielded chunk (streaming only). Default 65536. */
  chunkRows?: number;
  /** Bytes read from the file at a time. Default 1 MiB. */
  blockBytes?: number;
}

/** A block of rows from {@linkcode streamNumericCsv}. The arrays are reused: copy what must outlive the next chunk. */
export interface NumericCsvChunk {
  /** Index (0-based, header excluded) of the first row of this chunk. */
  firstRow: number;
  /** Number of rows in this chunk. */
  rows: number;
  /** One array per requested column, each valid for `rows` entries. */
  columns: Float64Array[];
}

/** A whole numeric CSV, column by column. */
export interface NumericCsv {
  /** The header as written in the file (trimmed, quotes removed). */
  header: string[];
  /** Number of data rows. */
  rows: number;
  /** Requested column name -> values. */
  columns: Record<string, Float64Array>;
}

const COMMA = 44, LF = 10, CR = 13, QUOTE = 34, SPACE = 32, TAB = 9;
const MINUS = 45, PLUS = 43, DOT = 46, ZERO = 48, NINE = 57, LOWER_E = 101, UPPER_E = 69;

// Exact powers of ten: a float64 mantissa below 2^53 times or divided by one of these is correctly rounded.
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));

function cleanHeaderCell(cell: string): string {
  let s = cell.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).replaceAll('""', '"').trim();
  return s;
}

/**
 * Reads the header line of a CSV file (the first line), without reading the rest of the file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readCsvHeader } from "./csv.ts";
 * const path = `${await Deno.makeTempDir()}/0000.csv`;
 * await Deno.writeTextFile(path, "node,slice,X,Y,Z,head\n1,1,0,0,0,1.0\n");
 * assert.ok((await readCsvHeader(path)).join() === "node,slice,X,Y,Z,head");
 * ```
 */
export async function readCsvHeader(path: string): Promise<string[]> {
  let header: string[] = [];
  const rows = streamNumericCsv(path, { columns: [], chunkRows: 1 }, (h) => (header = h));
  await rows.next();
  await rows.return(undefined);
  return header;
}

/**
 * Streams the requested numeric columns of a CSV file in chunks of rows.
 *
 * Errors (as {@linkcode CsvError}) name the file, line and column: a requested column missing from the header, a
 * row with more or fewer cells than the header, an empty or non-numeric cell. `nan`/`NaN`/`inf` are read as the
 * IEEE values; callers decide whether to accept them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { streamNumericCsv } from "./csv.ts";
 * const path = `${await Deno.makeTempDir()}/big.csv`;
 * await Deno.writeTextFile(path, "node,X,head\n1,0.5,1.01\n2,1.5,1.02\n3,2.5,1.03\n");
 * let sum = 0;
 * for await (const chunk of streamNumericCsv(path, { columns: ["X", "head"], chunkRows: 2 })) {
 *   const [x] = chunk.columns; // Float64Array views, chunk.rows entries each (reused: copy to keep)
 *   for (let i = 0; i < chunk.rows; i++) sum += x[i];
 * }
 * assert.ok(sum === 4.5);
 * ```
 */
export async function* streamNumericCsv(
  path: string,
  options: NumericCsvOptions,
  onHeader?: (header: string[]) => void,
): AsyncGenerator<NumericCsvChunk> {
  const chunkRows = options.chunkRows ?? 65536;
  const file = await openCsv(path);
  try {
    const r = new BlockReader(file, Math.max(options.blockBytes ?? (1 << 20), 64));
    const header = await readHeader(r, path);
    onHeader?.(header);
    const nFields = header.length;
    const slotOf = columnSlots(path, header, options.columns); // field index -> output column slot
    const out = Array.from({ length: options.columns.length }, () => new Float64Array(chunkRows));
    let line = 1; // line number of the last line started (the header is line 1)
    let firstRow = 0;
    let inChunk = 0;
    const fail = (msg: string): never => {
      throw new CsvError(`${path}:${line}: ${msg}`, path, line);
    };
    while (true) {
      const limit = r.completeLines(); // bytes [pos, limit) are complete lines
      const buf = r.buf;
      let pos = r.pos;
      const slowNumber = (start: number, end: number, field: number) =>
        cellNumber(buf, start, end, header[field], fail);
      while (pos < limit) {
        // one line starting at pos
        line++;
        let field = 0;
        let p = pos;
        // skip empty lines (only whitespace / CR)
        {
          let q = p;
          while (q < limit && (buf[q] === SPACE || buf[q] === TAB || buf[q] === CR)) q++;
          if (q >= limit || buf[q] === LF) {
            pos = q + 1;
            continue;
          }
        }
        while (true) {
          const slot = field < nFields ? slotOf[field] : -1;
          const start = p;
          let b = buf[p];
          if (slot >= 0) {
            // fast path: [sign] digits [. digits] [e [sign] digits]
            let neg = false;
            if (b === MINUS) {
              neg = true;
              b = buf[++p];
            } else if (b === PLUS) b = buf[++p];
            let mant = 0, digits = 0, exp = 0, any = false;
            while (b >= ZERO && b <= NINE) {
              if (digits < 19) {
                mant = mant * 10 + (b - ZERO);
                if (mant !== 0) digits++;
              } else exp++;
              any = true;
              b = buf[++p];
            }
            if (b === DOT) {
              b = buf[++p];
              while (b >= ZERO && b <= NINE) {
                if (digits < 19) {
                  mant = mant * 10 + (b - ZERO);
                  if (mant !== 0) digits++;
                  exp--;
                }
                any = true;
                b = buf[++p];
              }
            }
            if (any && (b === LOWER_E || b === UPPER_E)) {
              b = buf[++p];
              let eneg = false;
              if (b === MINUS) {
                eneg = true;
                b = buf[++p];
              } else if (b === PLUS) b = buf[++p];
              let e = 0, edigits = 0;
              while (b >= ZERO && b <= NINE) {
                e = e * 10 + (b - ZERO);
                edigits++;
                b = buf[++p];
              }
              if (edigits === 0) any = false;
              exp += eneg ? -e : e;
            }
            let value: number;
            if (
              any && (b === COMMA || b === LF || b === CR || p >= limit) && digits <= 15 && exp >= -22 &&
              exp <= 22
            ) {
              value = exp >= 0 ? mant * POW10[exp] : mant / POW10[-exp];
              if (neg) value = -value;
            } else {
              // anything unusual (long mantissa, big exponent, spaces, quotes, nan): take the careful route
              p = cellEnd(buf, p, limit);
              value = slowNumber(start, p > start && buf[p - 1] === CR ? p - 1 : p, field);
            }
            out[slot][inChunk] = value;
          } else {
            while (p < limit && b !== COMMA && b !== LF) {
              if (b === QUOTE) {
                p++;
                while (p < limit && buf[p] !== QUOTE) p++;
              }
              b = buf[++p];
            }
          }
          b = buf[p];
          if (b === CR) b = buf[++p];
          if (p >= limit || b === LF) {
            if (field + 1 !== nFields) {
              fail(`ragged row: ${field + 1} cells where the header has ${nFields}`);
            }
            p++;
            break;
          }
          if (b === COMMA) {
            field++;
            p++;
            if (field >= nFields) {
              fail(`ragged row: ${nFields + cellsLeft(buf, p, limit)} cells where the header has ${nFields}`);
            }
            continue;
          }
          fail(`non-numeric value in column '${header[field]}'`);
        }
        pos = p;
        inChunk++;
        if (inChunk === chunkRows) {
          yield { firstRow, rows: inChunk, columns: out };
          firstRow += inChunk;
          inChunk = 0;
        }
      }
      r.pos = pos;
      if (r.eof) break;
      await r.refill();
    }
    if (inChunk > 0) yield { firstRow, rows: inChunk, columns: out };
  } finally {
    file.close();
  }
}

async function openCsv(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CsvError(`CSV file not found: ${path}`, path);
    throw e;
  }
}

/** End of the cell starting at `p` (at its comma or line end), skipping quoted text. */
function cellEnd(buf: Uint8Array, p: number, limit: number): number {
  while (p < limit && buf[p] !== COMMA && buf[p] !== LF) {
    if (buf[p] === QUOTE) {
      p++;
      while (p < limit && buf[p] !== QUOTE) p++;
    }
    p++;
  }
  return p;
}

/** Cells from `p` to the end of the line (for the message about a ragged row). */
function cellsLeft(buf: Uint8Array, p: number, limit: number): number {
  let n = 1;
  while (p < limit && buf[p] !== LF) if (buf[p++] === COMMA) n++;
  return n;
}

/** For each field of the header, the output slot of the column it is (-1: not wanted). */
function columnSlots(path: string, header: string[], columns: readonly string[]): Int32Array {
  const slotOf = new Int32Array(header.length).fill(-1);
  columns.forEach((name, slot) => {
    const idx = header.indexOf(name);
    if (idx < 0) {
      throw new CsvError(
        `${path}: required column '${name}' is missing (the header has: ${header.join(", ")})`,
        path,
        1,
      );
    }
    slotOf[idx] = slot;
  });
  return slotOf;
}

/** A cell through `Number` (after quotes and spaces), with nan/inf literals; `fail` names line and column. */
function cellNumber(
  buf: Uint8Array,
  start: number,
  end: number,
  column: string,
  fail: (m: string) => never,
): number {
  let s = new TextDecoder().decode(buf.subarray(start, end)).trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).trim();
  if (s === "") fail(`empty value in column '${column}'`);
  const lower = s.toLowerCase();
  if (lower === "nan" || lower === "-nan") return NaN;
  if (lower === "inf" || lower === "+inf" || lower === "infinity") return Infinity;
  if (lower === "-inf" || lower === "-infinity") return -Infinity;
  const v = Number(s);
  if (Number.isNaN(v)) fail(`non-numeric value '${s}' in column '${column}'`);
  return v;
}

/** A file read in blocks into a buffer that keeps a partial last line across reads. */
class BlockReader {
  /** The buffer; bytes [pos, filled) are unread data. */
  buf: Uint8Array;
  filled = 0;
  pos = 0;
  eof = false;

  constructor(private file: Deno.FsFile, blockBytes: number) {
    this.buf = new Uint8Array(blockBytes);
  }

  /** Reads until the buffer is full or the file ends. */
  async fill(): Promise<void> {
    while (!this.eof && this.filled < this.buf.length) {
      const n = await this.file.read(this.buf.subarray(this.filled));
      if (n === null) this.eof = true;
      else this.filled += n;
    }
  }

  /** Doubles the buffer, keeping the unread bytes at its start. */
  grow(): void {
    const bigger = new Uint8Array(this.buf.length * 2);
    bigger.set(this.buf.subarray(this.pos, this.filled));
    this.filled -= this.pos;
    this.pos = 0;
    this.buf = bigger;
  }

  /**
   * End of the complete lines in the buffer: after its last LF, or at EOF the end of the data (given a final LF,
   * so that no parse runs past the data into stale bytes of the buffer).
   */
  completeLines(): number {
    if (this.eof && this.filled > this.pos && this.buf[this.filled - 1] !== LF) {
      if (this.filled === this.buf.length) this.grow();
      this.buf[this.filled++] = LF;
    }
    if (this.eof) return this.filled;
    const stop = this.buf.subarray(this.pos, this.filled).lastIndexOf(LF);
    return stop < 0 ? this.pos : this.pos + stop + 1;
  }

  /** Keeps the partial line at the start (growing the buffer if the line fills it) and reads on. */
  async refill(): Promise<void> {
    if (this.pos === 0 && this.filled === this.buf.length) this.grow();
    else {
      this.buf.copyWithin(0, this.pos, this.filled);
      this.filled -= this.pos;
      this.pos = 0;
    }
    await this.fill();
  }
}

/** Reads the header line; leaves the reader after it. */
async function readHeader(r: BlockReader, path: string): Promise<string[]> {
  await r.fill();
  let headerEnd = r.buf.subarray(0, r.filled).indexOf(LF);
  while (headerEnd < 0 && !r.eof) {
    r.grow();
    await r.fill();
    headerEnd = r.buf.subarray(0, r.filled).indexOf(LF);
  }
  if (r.filled === 0) throw new CsvError(`${path}: the file is empty (expected a header line)`, path, 1);
  let text = new TextDecoder().decode(r.buf.subarray(0, headerEnd < 0 ? r.filled : headerEnd));
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  r.pos = headerEnd < 0 ? r.filled : headerEnd + 1;
  return text.split(",").map(cleanHeaderCell);
}

/**
 * Reads the requested numeric columns of a whole CSV file into one Float64Array per column.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readNumericCsv } from "./csv.ts";
 * const path = `${await Deno.makeTempDir()}/0000.csv`;
 * await Deno.writeTextFile(path, "node,X,Y,Z\n1,0,1,2\n2,3,4,5\n");
 * const csv = await readNumericCsv(path, ["X", "Z"]);
 * assert.ok(csv.rows === 2 && csv.columns.Z[1] === 5); // one Float64Array per column
 * ```
 */
export async function readNumericCsv(
  path: string,
  columns: readonly string[],
  expectedRows = 0,
): Promise<NumericCsv> {
  let capacity = Math.max(expectedRows, 1024);
  let cols = columns.map(() => new Float64Array(capacity));
  let rows = 0;
  let hdr: string[] = [];
  for await (
    const chunk of streamNumericCsv(path, { columns, chunkRows: Math.min(capacity, 65536) }, (h) => (hdr = h))
  ) {
    if (rows + chunk.rows > capacity) {
      capacity = Math.max(capacity * 2, rows + chunk.rows);
      cols = cols.map((c) => {
        const bigger = new Float64Array(capacity);
        bigger.set(c.subarray(0, rows));
        return bigger;
      });
    }
    for (let i = 0; i < cols.length; i++) cols[i].set(chunk.columns[i].subarray(0, chunk.rows), rows);
    rows += chunk.rows;
  }
  const result: Record<string, Float64Array> = {};
  columns.forEach((name, i) => (result[name] = cols[i].length === rows ? cols[i] : cols[i].slice(0, rows)));
  return { header: hdr, rows, columns: result };
}
