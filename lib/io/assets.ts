/**
 * Finding the data files that come with npm dependencies (plotly.min.js, the figure renderer's .wasm, fonts) both
 * when running from source (node_modules) and from a bundle or compiled binary (the files kept beside it).
 *
 * @module
 */

import { createRequire } from "node:module";

/**
 * The path of a file shipped with a dependency: `npmPath` resolved in node_modules, else `envPath` (a path taken
 * from the environment by the caller), else `fileName` beside the executable or beside the main module. Undefined
 * when it is in none of these places.
 */
export function findAsset(
  npmPath: string,
  fileName: string,
  envPath?: () => string | undefined,
): string | undefined {
  const candidates: (() => string | undefined)[] = [
    () => createRequire(import.meta.url).resolve(npmPath),
    () => envPath?.(),
    () => Deno.execPath().replace(/[^/\\]*$/, fileName),
    () => new URL(`./${fileName}`, Deno.mainModule).pathname,
  ];
  for (const c of candidates) {
    try {
      const p = c();
      if (p && Deno.statSync(p).isFile) return p;
    } catch {
      // not there (or no permission to look): the next place
    }
  }
  return undefined;
}
