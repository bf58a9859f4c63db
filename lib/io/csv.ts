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
 * ```ts ignore
 * const header = await readCsvHeader("data/henry/all/0000.csv"); // ["node", "slice", "X", ...]
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
 * ```ts ignore
 * for await (const chunk of streamNumericCsv("big.csv", { columns: ["X", "head"] })) {
 *   const [x, head] = chunk.columns; // Float64Array views, chunk.rows entries each
 * }
 * ```
 */
export async function* streamNumericCsv(
  path: string,
  options: NumericCsvOptions,
  onHeader?: (header: string[]) => void,
): AsyncGenerator<NumericCsvChunk> {
  const chunkRows = options.chunkRows ?? 65536;
  const blockBytes = Math.max(options.blockBytes ?? (1 << 20), 64);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CsvError(`CSV file not found: ${path}`, path);
    throw e;
  }
  try {
    let buf = new Uint8Array(blockBytes);
    let filled = 0; // bytes of buf holding data
    let eof = false;
    const fill = async () => {
      while (!eof && filled < buf.length) {
        const n = await file.read(buf.subarray(filled));
        if (n === null) eof = true;
        else filled += n;
      }
    };

    // ---- header ----
    await fill();
    let headerEnd = buf.subarray(0, filled).indexOf(LF);
    while (headerEnd < 0 && !eof) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf.subarray(0, filled));
      buf = bigger;
      await fill();
      headerEnd = buf.subarray(0, filled).indexOf(LF);
    }
    if (filled === 0) throw new CsvError(`${path}: the file is empty (expected a header line)`, path, 1);
    const headerStop = headerEnd < 0 ? filled : headerEnd;
    let headerText = new TextDecoder().decode(buf.subarray(0, headerStop));
    if (headerText.charCodeAt(0) === 0xfeff) headerText = headerText.slice(1);
    const header = headerText.split(",").map(cleanHeaderCell);
    onHeader?.(header);
    const nFields = header.length;
    const slotOf = new Int32Array(nFields).fill(-1); // field index -> output column slot
    options.columns.forEach((name, slot) => {
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
    const nOut = options.columns.length;
    const out = Array.from({ length: nOut }, () => new Float64Array(chunkRows));

    let pos = headerEnd < 0 ? filled : headerEnd + 1;
    let line = 1; // line number of the last complete line consumed
    let firstRow = 0;
    let inChunk = 0;

    const fail = (msg: string): never => {
      throw new CsvError(`${path}:${line}: ${msg}`, path, line);
    };
    const slowNumber = (start: number, end: number, field: number): number => {
      let s = new TextDecoder().decode(buf.subarray(start, end)).trim();
      if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).trim();
      if (s === "") fail(`empty value in column '${header[field]}'`);
      const lower = s.toLowerCase();
      if (lower === "nan" || lower === "-nan") return NaN;
      if (lower === "inf" || lower === "+inf" || lower === "infinity") return Infinity;
      if (lower === "-inf" || lower === "-infinity") return -Infinity;
      const v = Number(s);
      if (Number.isNaN(v)) fail(`non-numeric value '${s}' in column '${header[field]}'`);
      return v;
    };

    while (true) {
      // Parse every complete line in buf[pos, lastLF]; at EOF the remainder is a line too (given its newline, so
      // that no parse runs past the data into stale bytes of the buffer).
      if (eof && filled > pos && buf[filled - 1] !== LF) {
        if (filled === buf.length) {
          const bigger = new Uint8Array(buf.length + 1);
          bigger.set(buf);
          buf = bigger;
        }
        buf[filled++] = LF;
      }
      let stop = buf.subarray(pos, filled).lastIndexOf(LF);
      stop = stop < 0 ? -1 : pos + stop; // index of last LF
      const limit = eof ? filled : stop + 1; // bytes [pos, limit) are complete lines
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
              while (p < limit && buf[p] !== COMMA && buf[p] !== LF) {
                if (buf[p] === QUOTE) {
                  p++;
                  while (p < limit && buf[p] !== QUOTE) p++;
                }
                p++;
              }
              let end = p;
              if (end > start && buf[end - 1] === CR) end--;
              value = slowNumber(start, end, field);
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
              // count the cells for the message
              let extra = 1;
              while (p < limit && buf[p] !== LF) if (buf[p++] === COMMA) extra++;
              fail(`ragged row: ${nFields + extra} cells where the header has ${nFields}`);
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
      if (eof) break;
      // keep the partial line, refill
      const rest = filled - pos;
      if (rest === buf.length) {
        const bigger = new Uint8Array(buf.length * 2);
        bigger.set(buf.subarray(pos, filled));
        buf = bigger;
      } else buf.copyWithin(0, pos, filled);
      filled = rest;
      pos = 0;
      await fill();
    }
    if (inChunk > 0) yield { firstRow, rows: inChunk, columns: out };
  } finally {
    file.close();
  }
}

/**
 * Reads the requested numeric columns of a whole CSV file into one Float64Array per column.
 *
 * @example
 * ```ts ignore
 * const csv = await readNumericCsv("0000.csv", ["X", "Y", "Z"]);
 * csv.rows; // number of data rows
 * csv.columns.X; // Float64Array
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
