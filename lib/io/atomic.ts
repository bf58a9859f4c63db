/**
 * Atomic file writes: a kill at any moment leaves either the old file or the new one, never a torn one.
 *
 * @module
 */

import { diskFullOr, writePoint } from "./disk_full.ts";

/**
 * Writes bytes to `path` through a temporary file in the same folder, fsync and rename. A full disk throws a
 * {@linkcode DiskFullError} naming `path`, with the old file left as it was and no temporary file left behind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./atomic.ts";
 * const path = `${await Deno.makeTempDir()}/config.json`;
 * await writeFileAtomic(path, new TextEncoder().encode("{}"));
 * assert.ok(await Deno.readTextFile(path) === "{}");
 * ```
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  writePoint(path);
  const tmp = tempName(path);
  const kill = testKillPoint(path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw diskFullOr(e, path);
  }
  try {
    let off = 0;
    while (off < bytes.length) {
      off += await file.write(
        bytes.subarray(off, kill === "during" ? Math.max(1, bytes.length >> 1) : undefined),
      );
      if (kill === "during") killSelf();
    }
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw diskFullOr(e, path);
  }
  file.close();
  const delay = testWriteDelay();
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  if (kill === "before") killSelf();
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw diskFullOr(e, path);
  }
  if (kill === "after") killSelf();
}

/** The same as {@linkcode writeFileAtomic}, synchronously (for exits that cannot wait). */
export function writeFileAtomicSync(path: string, bytes: Uint8Array): void {
  writePoint(path);
  const tmp = tempName(path);
  try {
    const file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    try {
      let off = 0;
      while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // not created
    }
    throw diskFullOr(e, path);
  }
}

/** Writes text atomically and synchronously (UTF-8). */
export function writeTextFileAtomicSync(path: string, text: string): void {
  writeFileAtomicSync(path, new TextEncoder().encode(text));
}

/** Writes text atomically (UTF-8); see {@linkcode writeFileAtomic}. */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/** `<path>.<pid>.<random>.tmp`: in the same folder (so the rename is atomic), naming the writing process. */
function tempName(path: string): string {
  return `${path}.${Deno.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`;
}

/**
 * Test hook for kill-and-resume tests: `GINO_GW_TEST_KILL_AT=<when>:<name prefix>:<n>` SIGKILLs this process at
 * the n-th atomic write (in this process) of a file whose name starts with the prefix: `during` the write of its
 * temporary file, `before` the rename into place, or `after` it.
 */
function testKillPoint(path: string): "during" | "before" | "after" | undefined {
  killSpec ??= parseKillSpec();
  if (!killSpec) return undefined;
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (!name.startsWith(killSpec.prefix) || ++killSpec.seen !== killSpec.n) return undefined;
  return killSpec.when;
}
let killSpec:
  | { when: "during" | "before" | "after"; prefix: string; n: number; seen: number }
  | null
  | undefined;
function parseKillSpec() {
  let v: string | undefined;
  try {
    v = Deno.env.get("GINO_GW_TEST_KILL_AT");
  } catch {
    return null; // no env permission
  }
  const m = v ? /^(during|before|after):([^:]+):(\d+)$/.exec(v) : null;
  return m ? { when: m[1] as "during" | "before" | "after", prefix: m[2], n: Number(m[3]), seen: 0 } : null;
}
function killSelf(): never {
  Deno.kill(Deno.pid, "SIGKILL");
  throw new Error("unreachable: killed");
}

/** Test hook: GINO_GW_TEST_WRITE_DELAY_MS holds a written temporary file this long before the rename. */
function testWriteDelay(): number {
  try {
    return Number(Deno.env.get("GINO_GW_TEST_WRITE_DELAY_MS") ?? 0) || 0;
  } catch {
    return 0; // no env permission
  }
}
