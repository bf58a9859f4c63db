/**
 * Cross-section maps of a field on the built-in Henry grid (x along the length, z up, one y-row), as SVG: the true
 * and predicted fields on one shared sequential colour scale, the error on a diverging scale centred on zero, each
 * panel with x and z axes in metres and a colour bar with ticks.
 *
 * @module
 */

import { fmtTick, niceTicks } from "./chart.ts";
import { Canvas, encodePng } from "./png.ts";
import { INK, Svg } from "./svg.ts";
import type { Rgb } from "./svg.ts";

// A perceptually ordered colour scale (dark blue -> teal -> yellow), interpolated linearly.
const SCALE: Rgb[] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

/** The sequential scale at t in [0, 1]. */
export function sequential(t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (SCALE.length - 1);
  const i = Math.min(SCALE.length - 2, Math.floor(x)), f = x - i;
  return [0, 1, 2].map((k) => Math.round(SCALE[i][k] + f * (SCALE[i + 1][k] - SCALE[i][k]))) as Rgb;
}

/** The diverging scale at t in [-1, 1]: blue, white at 0, red. */
export function diverging(t: number): Rgb {
  const x = Math.max(-1, Math.min(1, t));
  return x < 0
    ? [Math.round(255 + x * 200), Math.round(255 + x * 150), 255]
    : [255, Math.round(255 - x * 150), Math.round(255 - x * 200)];
}

/** The Henry grid a map is drawn on (`henry.json` parameters). */
export interface HenryGridSpec {
  /** Cells along x. */
  nx: number;
  /** Cells along y. */
  ny: number;
  /** Cells along z. */
  nz: number;
  /** Extent along x, m (default 2, the Henry problem's). */
  length?: number;
  /** Extent along z, m (default 1). */
  height?: number;
}

const GREY: Rgb = [215, 215, 215];

/** Cells as one PNG image (one pixel per cell; the SVG stretches it with sharp edges). */
async function cellImage(
  nx: number,
  nz: number,
  colour: (col: number, layer: number) => Rgb,
): Promise<Uint8Array> {
  const c = new Canvas(nx, nz);
  for (let l = 0; l < nz; l++) {
    for (let col = 0; col < nx; col++) c.fillRect(col, l, 1, 1, colour(col, l));
  }
  return await encodePng(c);
}

/** Renders the true, predicted and error panels for y-row 1; `values` maps node id -> true and predicted value. */
export async function renderFieldMaps(
  grid: HenryGridSpec,
  values: Map<number, { truth: number; pred: number }>,
  title: string,
  unitLabel = "",
): Promise<Svg> {
  const { nx, ny, nz } = grid;
  const length = grid.length ?? 2, height = grid.height ?? 1;
  const pw = 360, ph = Math.round((pw * height) / length);
  const left = 64, gap = 150, top = 70;
  const svg = new Svg(left + 3 * pw + 2 * gap + 100, top + ph + 78);
  svg.text(svg.width / 2, 28, title, { anchor: "middle", size: 17, bold: true });
  let lo = Infinity, hi = -Infinity, emax = 0;
  for (const { truth, pred } of values.values()) {
    lo = Math.min(lo, truth, pred);
    hi = Math.max(hi, truth, pred);
    emax = Math.max(emax, Math.abs(pred - truth));
  }
  if (!(hi > lo)) hi = lo + 1;
  if (!(emax > 0)) emax = 1;
  const at = (col: number, l: number) => values.get((l * ny + 0) * nx + col + 1);
  const panels: {
    name: string;
    colour: (v: { truth: number; pred: number }) => Rgb;
    bar: (t: number) => Rgb;
  }[] = [
    { name: "true", colour: (v) => sequential((v.truth - lo) / (hi - lo)), bar: sequential },
    { name: "predicted", colour: (v) => sequential((v.pred - lo) / (hi - lo)), bar: sequential },
    {
      name: "error (predicted - true)",
      colour: (v) => diverging((v.pred - v.truth) / emax),
      bar: (t) => diverging(2 * t - 1),
    },
  ];
  for (const [k, p] of panels.entries()) {
    const x0 = left + k * (pw + gap);
    svg.text(x0 + pw / 2, top - 12, p.name, { anchor: "middle", size: 15, bold: true });
    svg.image(
      x0,
      top,
      pw,
      ph,
      await cellImage(nx, nz, (col, l) => {
        const v = at(col, l);
        return v ? p.colour(v) : GREY;
      }),
    );
    svg.rect(x0, top, pw, ph, "none", { color: INK, width: 1 });
    // axes: x along the bottom, z up the left side, in metres
    for (const v of niceTicks(0, length, 4)) {
      const x = x0 + (v / length) * pw;
      svg.line(x, top + ph, x, top + ph + 5, { color: INK });
      svg.text(x, top + ph + 19, fmtTick(v), { anchor: "middle", size: 12 });
    }
    for (const v of niceTicks(0, height, 3)) {
      const y = top + ph - (v / height) * ph;
      svg.line(x0 - 5, y, x0, y, { color: INK });
      svg.text(x0 - 8, y, fmtTick(v), { anchor: "end", middle: true, size: 12 });
    }
    svg.text(x0 + pw / 2, top + ph + 38, "x (m)", { anchor: "middle", size: 13 });
    svg.text(x0 - 38, top + ph / 2, "z (m)", { anchor: "middle", size: 13, rotate: -90 });
    // colour bar with ticks
    const bx = x0 + pw + 14, bw = 14;
    const steps = 64;
    svg.image(bx, top, bw, ph, await cellImage(1, steps, (_, l) => p.bar(1 - (l + 0.5) / steps)));
    svg.rect(bx, top, bw, ph, "none", { color: INK, width: 0.8 });
    const [a, b] = k < 2 ? [lo, hi] : [-emax, emax];
    for (const v of niceTicks(a, b, 4)) {
      if (v < a - 1e-12 || v > b + 1e-12) continue;
      const y = top + ph - ((v - a) / (b - a)) * ph;
      svg.line(bx + bw, y, bx + bw + 4, y, { color: INK });
      svg.text(bx + bw + 7, y, fmtTick(v), { size: 12, middle: true });
    }
    if (unitLabel) svg.text(bx, top - 12, unitLabel, { size: 12 });
  }
  svg.text(
    left,
    top + ph + 64,
    `land side at x = 0, sea at x = ${
      fmtTick(length)
    } m; true and predicted share one colour scale; grey: no value`,
    { size: 12, color: [90, 90, 90] },
  );
  return svg;
}
