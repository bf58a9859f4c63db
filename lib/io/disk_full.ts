/**
 * A full disk (or an exhausted quota): the error that names the file that could not be written, appends that
 * leave no torn line behind, and the test hooks that make a real file system full at a chosen write.
 *
 * Every write of the toolkit goes through {@linkcode writePoint} first (atomic writes, appends, the run lock, the
 * exit status file, patch arrays, backups), so a test can fill the disk right before any one of them.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** True for "no space left on device" and "disk quota exceeded". */
export function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return true;
  const msg = e instanceof Error ? e.message : String(e);
  return /No space left on device|os error 28\b|Disk quota exceeded|os error 122\b/.test(msg);
}

/**
 * The disk holding a file is full: exit status 2 (the job scripts stop a chain on it: resubmitting cannot help
 * until space is freed).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DiskFullError } from "./disk_full.ts";
 * const e = new DiskFullError("results/run/loss_history.json", "No space left on device (os error 28)");
 * assert.ok(e.message.includes("results/run/loss_history.json") && e.exitCode === 2);
 * ```
 */
export class DiskFullError extends ToolError {
  /** The file whose write failed. */
  readonly path: string;
  /** A full disk while writing `path`; `reason`: the system's words. */
  constructor(path: string, reason: string) {
    super(
      `the disk is full: could not write ${path} (${reason.replace(/: \w+ '.*$/, "")}). Files saved before ` +
        `are intact (every file is written whole or not at all); free space on that disk (for example deno ` +
        `task ckpt clean RUN), then run the command again`,
    );
    this.name = "DiskFullError";
    this.path = path;
  }
}

/** `e` as a {@linkcode DiskFullError} naming `path` when it says the disk is full; otherwise `e` unchanged. */
export function diskFullOr(e: unknown, path: string): unknown {
  if (e instanceof DiskFullError || !isDiskFull(e)) return e;
  return new DiskFullError(path, e instanceof Error ? e.message : String(e));
}

/**
 * Appends `text` to `path` (created when missing) in full or not at all: a write the disk cannot hold is cut
 * back to the file's previous length (shortening a file never needs space), so no torn line is left. Throws a
 * {@linkcode DiskFullError} naming the file when the disk is full.
 */
export async function appendTextFile(path: string, text: string): Promise<void> {
  writePoint(path);
  const bytes = new TextEncoder().encode(text);
  let file: Deno.FsFile | undefined, size = 0;
  try {
    file = await Deno.open(path, { append: true, create: true });
    size = (await file.stat()).size;
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    file.close();
  } catch (e) {
    if (file) {
      await file.truncate(size).catch(() => {});
      file.close();
      if (size === 0) await Deno.remove(path).catch(() => {}); // created by this append: not left empty
    }
    throw diskFullOr(e, path);
  }
}

/** Appends `bytes` to an open file in full or not at all (see {@linkcode appendTextFile}); synchronous. */
export function appendAllSync(file: Deno.FsFile, bytes: Uint8Array, path: string): void {
  writePoint(path);
  const size = file.statSync().size;
  try {
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  } catch (e) {
    try {
      file.truncateSync(size);
    } catch {
      // nothing more to do
    }
    throw diskFullOr(e, path);
  }
}

/**
 * Test hooks, called before every write of the toolkit. `GINO_GW_TEST_WRITE_TRACE=<file>` appends the path of
 * each write to that file (one line each, kept on another disk). `GINO_GW_TEST_FULL_AT=<n>:<filler>` fills the
 * file system of `<filler>` (by writing that file until the system refuses) right before this process's n-th
 * write, so that write meets a really full disk.
 */
export function writePoint(path: string): void {
  hooks ??= readHooks();
  if (!hooks.trace && !hooks.fullAt) return;
  hooks.count++;
  if (hooks.trace) {
    try {
      Deno.writeTextFileSync(hooks.trace, `${hooks.count}\t${path}\n`, { append: true });
    } catch {
      // a test's trace only
    }
  }
  if (hooks.fullAt && hooks.count === hooks.fullAt.n) fill(hooks.fullAt.filler);
}

let hooks: { trace?: string; fullAt?: { n: number; filler: string }; count: number } | undefined;

function readHooks(): NonNullable<typeof hooks> {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined; // no env permission
    }
  };
  const m = /^(\d+):(.+)$/.exec(env("GINO_GW_TEST_FULL_AT") ?? "");
  return {
    trace: env("GINO_GW_TEST_WRITE_TRACE"),
    fullAt: m ? { n: Number(m[1]), filler: m[2] } : undefined,
    count: 0,
  };
}

/** Writes `filler` until its file system has no byte left. */
function fill(filler: string): void {
  const file = Deno.openSync(filler, { append: true, create: true });
  try {
    for (const size of [1 << 20, 4096, 1]) {
      const chunk = new Uint8Array(size);
      for (;;) {
        try {
          if (file.writeSync(chunk) < size) break;
        } catch {
          break;
        }
      }
    }
  } finally {
    file.close();
  }
}

/**
 * Disk space held for the moment a session fails: a file of zeros that is removed to make room for the last
 * words (the error line in the log, the session's record in the history) when the disk is full. A file system
 * that is full when the session starts fails here, at once, before any training.
 */
export class SpaceReserve {
  #path?: string;

  private constructor(path?: string) {
    this.#path = path;
  }

  /** Holds `bytes` bytes in `path` (written in full: sparse files hold nothing). */
  static create(path: string, bytes: number): SpaceReserve {
    writePoint(path);
    try {
      const file = Deno.openSync(path, { write: true, create: true, truncate: true });
      try {
        const chunk = new Uint8Array(Math.min(bytes, 1 << 16));
        for (let left = bytes; left > 0;) {
          left -= file.writeSync(chunk.subarray(0, Math.min(left, chunk.length)));
        }
      } finally {
        file.close();
      }
    } catch (e) {
      try {
        Deno.removeSync(path);
      } catch {
        // nothing was created
      }
      throw diskFullOr(e, path);
    }
    return new SpaceReserve(path);
  }

  /** No reserve (a process that writes no run files). */
  static none(): SpaceReserve {
    return new SpaceReserve();
  }

  /** Gives the space back (removes the file); again: nothing. */
  release(): void {
    if (!this.#path) return;
    try {
      Deno.removeSync(this.#path);
    } catch {
      // already gone
    }
    this.#path = undefined;
  }
}
