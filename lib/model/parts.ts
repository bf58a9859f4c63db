/**
 * Named parts of a training step for profiling (`deno task bench step --profile`). The model and the step wrap
 * their parts in {@linkcode part}; without an installed hook that is a plain call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { part, setPartHook } from "./parts.ts";
 * const seen: string[] = [];
 * setPartHook((name, fn) => (seen.push(name), fn()));
 * assert.equal(part("lifting", () => 2 + 2), 4);
 * setPartHook(undefined);
 * assert.deepEqual(seen, ["lifting"]);
 * ```
 *
 * @module
 */

/** Called around every part: runs `fn` and returns its result. */
export type PartHook = <T>(name: string, fn: () => T) => T;

let hook: PartHook | undefined;

/** Installs (or with undefined removes) the hook that sees every part. */
export function setPartHook(h: PartHook | undefined): void {
  hook = h;
}

/** Runs `fn` as the part `name`. */
export function part<T>(name: string, fn: () => T): T {
  return hook ? hook(name, fn) : fn();
}

/** Called around work done outside tfjs's kernels (an update in place): runs `fn`. */
export type WorkHook = (name: string, fn: () => void) => void;

let workHook: WorkHook | undefined;

/** Installs (or with undefined removes) the hook that sees such work, as a profile books a kernel call. */
export function setWorkHook(h: WorkHook | undefined): void {
  workHook = h;
}

/** Runs `fn`, work done outside tfjs's kernels, under the name `name` (as a kernel's name in a profile). */
export function work(name: string, fn: () => void): void {
  if (workHook) workHook(name, fn);
  else fn();
}
