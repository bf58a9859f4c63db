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
import { currentWorld } from "../parallel/world.ts";
import { isDiskFull, writePoint } from "../io/disk_full.ts";

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
  if (isDiskFull(e)) { // a write that went around lib/io/disk_full.ts (which names the file)
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

/**
 * Runs `main` and exits with its status; an error prints one `error: ...` line (see the module documentation).
 * Under MPI, a rank that fails takes the whole job down (MPI_Abort with its status); otherwise MPI is left cleanly.
 */
export async function runMain(main: () => Promise<number>): Promise<never> {
  let code: number;
  try {
    code = await main();
  } catch (e) {
    const { line, code: status } = describeError(e);
    const world = currentWorld();
    const together = e instanceof ToolError && e.everyRank;
    if (!(together && e.silent)) {
      console.error(`error: ${world.size > 1 && world.rank > 0 ? `[rank ${world.rank}] ` : ""}${line}`);
    }
    if (debug() && e instanceof Error) console.error(e.stack);
    recordExit(status);
    if (together) world.finalize();
    else if (world.size > 1) {
      // let the launcher pass this rank's message on before the job is taken down
      await new Promise((r) => setTimeout(r, 300));
      world.abort(status);
    }
    Deno.exit(status);
  }
  recordExit(code);
  // no rank leaves before rank 0 has written its last file (Open MPI ends the job when a rank exits non-zero)
  const world = currentWorld();
  if (!world.broken) {
    await world.barrier("the last barrier");
    world.finalize();
  }
  Deno.exit(code);
}

/**
 * With GINO_GW_STATUS_FILE set, the exit status is also written to that file (by rank 0 under MPI): MPI launchers
 * do not always pass their ranks' status on (MPICH's Hydra sometimes reports 0, Open MPI's reports 1 after a
 * signal), so job scripts read it from there. GINO_GW_TEST_RANK_REPORT=1 prints every rank's status (tests).
 */
function recordExit(code: number): void {
  const world = currentWorld();
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  if (env("GINO_GW_TEST_RANK_REPORT")) console.error(`rank ${world.rank} exit status ${code}`);
  const file = env("GINO_GW_STATUS_FILE");
  if (!file || world.rank !== 0) return;
  try {
    // written in place and cut to length: a status file the job script created beforehand holds its disk space,
    // so the status is reported even when the disk is full
    writePoint(file);
    const bytes = new TextEncoder().encode(`${code}\n`);
    const f = Deno.openSync(file, { write: true, create: true });
    try {
      let off = 0;
      while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
      f.truncateSync(bytes.length);
    } finally {
      f.close();
    }
  } catch (e) {
    console.error(
      `warning: could not write the exit status to GINO_GW_STATUS_FILE=${file}: ${(e as Error).message}`,
    );
  }
}
