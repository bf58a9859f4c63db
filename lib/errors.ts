/**
 * The toolkit's user-facing errors: one base class whose message tells the user what was wrong, where (file,
 * line, flag) and what to do, and which carries the exit status the command-line tools end with.
 *
 * @module
 */

/** Exit statuses of the command-line tools. */
export const EXIT = {
  /** Done: the target was reached or there was nothing to do. */
  done: 0,
  /** An unexpected error inside the toolkit (a bug): one line and a hint; the trace with GINO_GW_DEBUG=1. */
  internal: 1,
  /** Bad input: flags, data, checkpoints, files; nothing was changed. */
  usage: 2,
  /** Training stopped before the end (signal or time limit) after writing a resumable checkpoint. */
  stopped: 3,
  /** Training stopped because the loss became NaN or infinite; the last good checkpoint is kept. */
  diverged: 4,
  /** A second Ctrl-C: exited at once. */
  interrupted: 130,
} as const;

/**
 * An error the user can fix; the message names the thing (file, column, flag, checkpoint) and the fix. The
 * command-line tools print it as one `error: ...` line and exit with {@linkcode ToolError.exitCode}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ToolError } from "./errors.ts";
 * const e = new ToolError("--epochs: must be at least 1, got 0");
 * assert.ok(e.exitCode === 2);
 * ```
 */
export class ToolError extends Error {
  /** The exit status of a command-line tool that stops on this error. */
  readonly exitCode: number;
  /**
   * Under MPI: every rank raises this error at the same point (after agreeing on it), so the job ends normally
   * with its status instead of being taken down by the rank that failed.
   */
  everyRank = false;
  /** With {@linkcode ToolError.everyRank}: this rank's copy repeats rank 0's and is not printed. */
  silent = false;
  /** An error with the given message and exit status (default: bad input, 2). */
  constructor(message: string, exitCode: number = EXIT.usage) {
    super(message);
    this.name = "ToolError";
    this.exitCode = exitCode;
  }
}

/** `<path>: <message>`, without repeating the path when the message already names it. */
export function withPath(path: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.includes(path) ? msg : `${path}: ${msg}`;
}
