/**
 * Cross-section maps of a field on the built-in Henry grid (x along the length, z up, one y-row): true, predicted
 * and error panels with colour bars.
 *
 * @module
 */

import { Canvas } from "./png.ts";
import type { Rgb } from "./png.ts";

// A perceptually ordered colour scale (dark blue -> teal -> yellow), interpolated linearly.
const SCALE: Rgb[] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function sequential(t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (SCALE.length - 1);
  const i = Math.min(SCALE.length - 2, Math.floor(x)), f = x - i;
  return [0, 1, 2].map((k) => Math.round(SCALE[i][k] + f * (SCALE[i + 1][k] - SCALE[i][k]))) as Rgb;
}

function diverging(t: number): Rgb {
  // -1 blue, 0 white, +1 red
  const x = Math.max(-1, Math.min(1, t));
  return x < 0
    ? [Math.round(255 + x * 200), Math.round(255 + x * 150), 255]
    : [255, Math.round(255 - x * 150), Math.round(255 - x * 200)];
}

const num = (
  v: number,
) => (Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(2) : v.toPrecision(3));

/** Renders the three panels for y-row 1 of a Henry grid; `values` maps node id -> true and predicted value. */
export function renderFieldMaps(
  grid: { nx: number; ny: number; nz: number },
  values: Map<number, { truth: number; pred: number }>,
  title: string,
): Canvas {
  const { nx, ny, nz } = grid;
  const cell = Math.max(4, Math.min(24, Math.floor(560 / nx)));
  const pw = nx * cell, ph = nz * cell;
  const left = 30, gap = 110, top = 50;
  const c = new Canvas(left + 3 * (pw + gap), top + ph + 70);
  const ink: Rgb = [40, 40, 40];
  c.text(title, c.width / 2, 12, ink, 2, "center");
  let lo = Infinity, hi = -Infinity, emax = 0;
  for (const { truth, pred } of values.values()) {
    lo = Math.min(lo, truth, pred);
    hi = Math.max(hi, truth, pred);
    emax = Math.max(emax, Math.abs(pred - truth));
  }
  if (!(hi > lo)) hi = lo + 1;
  if (!(emax > 0)) emax = 1;
  const panels: [string, (v: { truth: number; pred: number }) => Rgb, string, string][] = [
    ["true", (v) => sequential((v.truth - lo) / (hi - lo)), num(lo), num(hi)],
    ["predicted", (v) => sequential((v.pred - lo) / (hi - lo)), num(lo), num(hi)],
    ["error (pred - true)", (v) => diverging((v.pred - v.truth) / emax), num(-emax), num(emax)],
  ];
  panels.forEach(([name, color, minLabel, maxLabel], k) => {
    const x0 = left + k * (pw + gap);
    c.text(name, x0 + pw / 2, top - 20, ink, 2, "center");
    for (let l = 0; l < nz; l++) {
      for (let col = 0; col < nx; col++) {
        const node = (l * ny + 0) * nx + col + 1;
        const v = values.get(node);
        c.fillRect(x0 + col * cell, top + l * cell, cell, cell, v ? color(v) : [220, 220, 220]);
      }
    }
    // colour bar
    const bx = x0 + pw + 10;
    for (let y = 0; y < ph; y++) {
      const t = 1 - y / ph;
      const rgb = k < 2 ? sequential(t) : diverging(2 * t - 1);
      c.fillRect(bx, top + y, 14, 1, rgb);
    }
    c.text(maxLabel, bx + 18, top - 2, ink, 2);
    c.text(minLabel, bx + 18, top + ph - 12, ink, 2);
  });
  c.text("x (land side left, sea right), z up", left, top + ph + 16, ink, 2);
  return c;
}
