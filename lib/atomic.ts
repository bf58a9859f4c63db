/**
 * Atomic file writes: a kill at any moment leaves either the old file or the new one, never a torn one.
 *
 * @module
 */

/**
 * Writes bytes to `path` through a temporary file in the same folder, fsync and rename.
 *
 * @example
 * ```ts ignore
 * await writeFileAtomic("config.json", new TextEncoder().encode("{}"));
 * ```
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${Deno.pid}.${Math.random().toString(36).slice(2, 8)}.tmp`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  try {
    let off = 0;
    while (off < bytes.length) off += await file.write(bytes.subarray(off));
    await file.sync();
  } catch (e) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  file.close();
  const delay = testWriteDelay();
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Writes text atomically (UTF-8); see {@linkcode writeFileAtomic}. */
export function writeTextFileAtomic(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(text));
}

/** Test hook: GINO_GW_TEST_WRITE_DELAY_MS holds a written temporary file this long before the rename. */
function testWriteDelay(): number {
  try {
    return Number(Deno.env.get("GINO_GW_TEST_WRITE_DELAY_MS") ?? 0) || 0;
  } catch {
    return 0; // no env permission
  }
}
