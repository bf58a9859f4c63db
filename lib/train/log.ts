/**
 * The human log of a run (`train.log`).
 *
 * @module
 */

import { appendAllSync, diskFullOr, writePoint } from "../io/disk_full.ts";

/**
 * A logger that writes to the console and appends to a log file. Lines logged before the file is known (before
 * {@linkcode RunLog.attach}) are kept and written to it then, with their own times.
 */
export class RunLog {
  #file?: Deno.FsFile;
  #path = "";
  #enc = new TextEncoder();
  #pending: string[] = [];
  #failed = false;

  /** A log to `path` (or attached later); `quiet`: no console output but warnings; `silent`: none at all. */
  constructor(path?: string, readonly quiet = false, readonly silent = false) {
    if (path) this.#open(path);
  }

  #open(path: string): void {
    this.#path = path;
    writePoint(path);
    try {
      this.#file = Deno.openSync(path, { append: true, create: true });
    } catch (e) {
      throw diskFullOr(e, path);
    }
  }

  /**
   * Appends whole lines. A write the disk cannot hold throws a `DiskFullError` naming the file (the line is cut
   * back, not left torn); the log then goes on to the console only, so the error is reported once.
   */
  #append(text: string): void {
    if (!this.#file || this.#failed) return;
    try {
      appendAllSync(this.#file, this.#enc.encode(text), this.#path);
    } catch (e) {
      this.#failed = true;
      throw e;
    }
  }

  #write(msg: string): void {
    const line = `${new Date().toISOString()} ${msg}\n`;
    if (this.#file) this.#append(line);
    else this.#pending.push(line);
  }

  /** Logs a line (timestamped in the file). */
  info(msg: string): void {
    if (!this.quiet) console.log(msg);
    this.#write(msg);
  }

  /** Writes a line to the log file only. */
  record(msg: string): void {
    this.#write(msg);
  }

  /**
   * Writes a last line to the log file only, even after a write the disk could not hold (space may have been
   * freed since: see `SpaceReserve`).
   */
  recordLast(msg: string): void {
    this.#failed = false;
    this.#write(msg);
  }

  /** Logs a warning (stderr). */
  warn(msg: string): void {
    if (!this.silent) console.error(msg);
    this.#write(msg);
  }

  /** Starts writing to a file (after the run folder is known), beginning with the lines logged so far. */
  attach(path: string): void {
    this.#file?.close();
    this.#open(path);
    const pending = this.#pending.join("");
    this.#pending = [];
    if (pending) this.#append(pending);
  }

  /** Closes the log file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}
