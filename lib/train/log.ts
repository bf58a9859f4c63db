/**
 * The human log of a run (`train.log`).
 *
 * @module
 */

/**
 * A logger that writes to the console and appends to a log file. Lines logged before the file is known (before
 * {@linkcode RunLog.attach}) are kept and written to it then, with their own times.
 */
export class RunLog {
  #file?: Deno.FsFile;
  #enc = new TextEncoder();
  #pending: string[] = [];

  /** A log to `path` (or attached later); `quiet`: no console output but warnings; `silent`: none at all. */
  constructor(path?: string, readonly quiet = false, readonly silent = false) {
    if (path) this.#file = Deno.openSync(path, { append: true, create: true });
  }

  #write(msg: string): void {
    const line = `${new Date().toISOString()} ${msg}\n`;
    if (this.#file) this.#file.writeSync(this.#enc.encode(line));
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

  /** Logs a warning (stderr). */
  warn(msg: string): void {
    if (!this.silent) console.error(msg);
    this.#write(msg);
  }

  /** Starts writing to a file (after the run folder is known), beginning with the lines logged so far. */
  attach(path: string): void {
    this.#file?.close();
    this.#file = Deno.openSync(path, { append: true, create: true });
    if (this.#pending.length) this.#file.writeSync(this.#enc.encode(this.#pending.join("")));
    this.#pending = [];
  }

  /** Closes the log file. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}
