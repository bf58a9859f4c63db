/**
 * The built-in demo data set: the 3D Henry problem of {@linkcode HENRY_DEMO}, generated and prepared into patches
 * the first time it is needed.
 *
 * @module
 */

import { HENRY_DEMO, writeHenry } from "../sim/henry.ts";
import { preparePatches } from "./prepare.ts";

/** Where the demo data set lives (relative to the working directory, the project root under `deno task`). */
export const DEMO_DIR = "data/henry";

/** Patch settings of the demo data set. */
export const DEMO_PREPARE = { nPatches: 8, sliceSplit: 2 };

/**
 * Makes sure the demo data set exists (raw CSVs in `<dir>/all`, patches in `<dir>/filter_patch`), generating and
 * preparing what is missing. Returns the folder.
 */
export async function ensureDemoData(
  dir = DEMO_DIR,
  log: (msg: string) => void = console.log,
): Promise<string> {
  const has = async (p: string) => {
    try {
      await Deno.stat(p);
      return true;
    } catch {
      return false;
    }
  };
  if (!(await has(`${dir}/henry.json`)) || !(await has(`${dir}/all`))) {
    log(`generating the built-in demo data set (3D Henry problem) in ${dir} ...`);
    await writeHenry(HENRY_DEMO, { out: dir, force: true, log });
  }
  if (!(await has(`${dir}/filter_patch/patches.json`))) {
    log(`preparing patches of the demo data set in ${dir}/filter_patch ...`);
    await preparePatches({
      rawDir: `${dir}/all`,
      outDir: `${dir}/filter_patch`,
      ...DEMO_PREPARE,
      force: true,
      log,
    });
  }
  return dir;
}
