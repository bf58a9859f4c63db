/**
 * Writes a figure as SVG (vector, for papers and slides) and PNG (rendered from the same SVG), each atomically.
 *
 * @module
 */

import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { svgToPng } from "./raster.ts";
import type { Svg } from "./svg.ts";

let warned = false;

/**
 * Writes `<base>.svg` and `<base>.png`; returns the paths written. When the PNG renderer cannot be loaded the SVG
 * is still written and one warning (through `warn`, default stderr) says why.
 */
export async function writeFigure(
  base: string,
  svg: Svg | string,
  warn: (msg: string) => void = (m) => console.error(m),
): Promise<string[]> {
  const text = svg.toString();
  await writeTextFileAtomic(`${base}.svg`, text);
  let png: Uint8Array;
  try {
    png = await svgToPng(text);
  } catch (e) {
    if (!warned) warn(`warning: ${(e as Error).message}; writing SVG figures only`);
    warned = true;
    return [`${base}.svg`];
  }
  await writeFileAtomic(`${base}.png`, png);
  return [`${base}.svg`, `${base}.png`];
}
