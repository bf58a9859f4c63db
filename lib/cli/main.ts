/**
 * The shared entry of the command-line tools: runs a main function and turns errors into one line on stderr and
 * an exit status. A {@linkcode ToolError} (bad flags, data, checkpoints, ...) prints `error: <message>` and exits
 * with its status (2 for bad input). A file-system error (permission, missing file, full disk) prints the path and
 * what to check, exit 2. Anything else is a bug: `error: internal error: ...` with a hint, exit 1; the stack trace
 * only with `GINO_GW_DEBUG=1`.
 *
 * @module
 */

import { EXIT, ToolError } from "../errors.ts";

/** Exit status for bad input of any kind. */
export const EXIT_USAGE: number = EXIT.usage;

/** The one line (without `error: `) and status an error ends a tool with. */
export function describeError(e: unknown): { line: string; code: number } {
  if (e instanceof ToolError) return { line: e.message, code: e.exitCode };
  if (e instanceof Deno.errors.PermissionDenied) {
    return { line: `permission denied: ${e.message} (check the folder's permissions)`, code: EXIT.usage };
  }
  if (e instanceof Deno.errors.NotFound) return { line: `not found: ${e.message}`, code: EXIT.usage };
  const msg = e instanceof Error ? e.message : String(e);
  if (/No space left on device|os error 28|Disk quota exceeded|os error 122/.test(msg)) {
    return {
      line:
        `the disk is full: ${msg}. Files already saved are intact (every write goes through a temporary ` +
        `file); free space (e.g. deno task ckpt clean RUN) and run the command again`,
      code: EXIT.usage,
    };
  }
  return {
    line:
      `internal error: ${msg} (a bug in gino-gw: run again with GINO_GW_DEBUG=1 for the stack trace and ` +
      `report it)`,
    code: EXIT.internal,
  };
}

function debug(): boolean {
  try {
    return !!Deno.env.get("GINO_GW_DEBUG");
  } catch {
    return false;
  }
}

/** Runs `main` and exits with its status; an error prints one `error: ...` line (see the module documentation). */
export async function runMain(main: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (e) {
    const { line, code: status } = describeError(e);
    console.error(`error: ${line}`);
    if (debug() && e instanceof Error) console.error(e.stack);
    code = status;
  }
  Deno.exit(code);
}
