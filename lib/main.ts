/**
 * The shared entry of the command-line tools: runs a main function and turns the toolkit's user-facing errors
 * (bad flags, data, checkpoints, ...) into one `error: ...` line and exit status 2; anything else is a bug and
 * keeps its stack trace.
 *
 * @module
 */

import { FlagError } from "./cli.ts";
import { CsvError } from "./csv.ts";
import { NpyError } from "./npy.ts";
import { DataError } from "./dataset.ts";
import { HenryError } from "./henry.ts";
import { SafetensorsError } from "./safetensors.ts";
import { CheckpointError } from "./checkpoint.ts";
import { BackendError } from "./tf.ts";

/** Errors whose message tells the user what to fix. */
const USER_ERRORS = [
  FlagError,
  CsvError,
  NpyError,
  DataError,
  HenryError,
  SafetensorsError,
  CheckpointError,
  BackendError,
];

/** Exit status for bad input of any kind. */
export const EXIT_USAGE = 2;

/** True when `e` is one of the toolkit's user-facing errors (or `extra`). */
export function isUserError(e: unknown, extra: (new (...args: never[]) => Error)[] = []): e is Error {
  return [...USER_ERRORS, ...extra].some((cls) => e instanceof cls);
}

/** Runs `main` and exits with its status; user-facing errors print one line and exit with {@linkcode EXIT_USAGE}. */
export async function runMain(
  main: () => Promise<number>,
  extra: (new (...args: never[]) => Error)[] = [],
): Promise<never> {
  try {
    Deno.exit(await main());
  } catch (e) {
    if (isUserError(e, extra)) {
      console.error(`error: ${e.message}`);
      Deno.exit(EXIT_USAGE);
    }
    throw e;
  }
}
