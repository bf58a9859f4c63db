/**
 * Line and scatter charts rendered to a {@linkcode Canvas} (axes, ticks, legend, log scale, marked x positions),
 * for the PNG figures of training curves and prediction reports.
 *
 * @module
 */

import { Canvas, textWidth } from "./png.ts";
import type { Rgb } from "./png.ts";

/** One series of a chart. */
export interface Series {
  /** Legend text. */
  name: string;
  /** x values (e.g. epochs). */
  x: number[];
  /** y values; non-finite ones leave a gap. */
  y: number[];
  /** Line and marker colour. */
  color: Rgb;
  /** Draw markers instead of (or with) lines. */
  markers?: boolean;
  /** Draw lines between points (default true). */
  lines?: boolean;
  /** Dash pattern: on and off lengths in pixels. */
  dash?: [number, number];
}

/** A chart's content. */
export interface ChartSpec {
  /** Title above the plot. */
  title: string;
  /** Text under the x axis. */
  xLabel: string;
  /** Text beside the y axis. */
  yLabel: string;
  /** The data series, drawn in order. */
  series: Series[];
  /** Logarithmic y axis (all values must be positive). */
  logY?: boolean;
  /** Vertical marks at x positions (e.g. resume points). */
  marks?: { x: number; label: string }[];
  /** Lines of text under the plot. */
  notes?: string[];
  /** A dashed diagonal y = x (predicted vs true plots). */
  diagonal?: boolean;
  /** Image width in pixels. */
  width?: number;
  /** Image height in pixels. */
  height?: number;
}

/** Standard palette. */
export const COLORS: Record<string, Rgb> = {
  blue: [31, 119, 180],
  orange: [255, 127, 14],
  green: [44, 160, 44],
  red: [214, 39, 40],
  purple: [148, 103, 189],
  grey: [127, 127, 127],
};

function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function logTicks(lo: number, hi: number): number[] {
  for (const mantissas of [[1], [1, 2, 5], [1, 1.5, 2, 3, 5, 7]]) {
    const out: number[] = [];
    for (let k = Math.floor(Math.log10(lo)) - 1; k <= Math.ceil(Math.log10(hi)); k++) {
      for (const m of mantissas) {
        const v = Number((m * Math.pow(10, k)).toPrecision(6));
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    if (out.length >= 3) return out;
  }
  return niceTicks(lo, hi, 4);
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1).replace("e+", "e");
  return String(Number(v.toPrecision(4)));
}

/** Renders a chart. */
export function renderChart(spec: ChartSpec): Canvas {
  const W = spec.width ?? 1000, H = spec.height ?? 620;
  const notesH = (spec.notes?.length ?? 0) * 20;
  const c = new Canvas(W, H + notesH);
  const left = 110, right = 30, top = 50, bottom = 70;
  const pw = W - left - right, ph = H - top - bottom;
  const all = spec.series.flatMap((s) => s.x.map((x, i) => [x, s.y[i]] as const)).filter(([x, y]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!spec.logY || y > 0)
  );
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (!all.length) [x0, x1, y0, y1] = [0, 1, spec.logY ? 1 : 0, spec.logY ? 10 : 1];
  if (spec.diagonal) {
    x0 = y0 = Math.min(x0, y0);
    x1 = y1 = Math.max(x1, y1);
  }
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  const ty = (v: number) => (spec.logY ? Math.log10(v) : v);
  let ly0 = ty(y0), ly1 = ty(y1);
  if (ly1 === ly0) [ly0, ly1] = [ly0 - (spec.logY ? 0.5 : 1), ly1 + (spec.logY ? 0.5 : 1)];
  const pad = (ly1 - ly0) * 0.05;
  ly0 -= pad;
  ly1 += pad;
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + ph - ((ty(y) - ly0) / (ly1 - ly0)) * ph;
  const ink: Rgb = [40, 40, 40], grid: Rgb = [225, 225, 225];
  // grid and ticks
  const yt = spec.logY ? logTicks(Math.pow(10, ly0), Math.pow(10, ly1)) : niceTicks(ly0, ly1);
  for (const v of yt) {
    const y = Y(v);
    if (y < top - 1 || y > top + ph + 1) continue;
    c.line(left, y, left + pw, y, grid, 1);
    c.text(fmtTick(v), left - 8, y - 7, ink, 2, "right");
  }
  for (const v of niceTicks(x0, x1, 8)) {
    const x = X(v);
    c.line(x, top, x, top + ph, grid, 1);
    c.text(fmtTick(v), x, top + ph + 10, ink, 2, "center");
  }
  c.line(left, top + ph, left + pw, top + ph, ink, 1.5);
  c.line(left, top, left, top + ph, ink, 1.5);
  for (const m of spec.marks ?? []) {
    const x = X(m.x);
    c.line(x, top, x, top + ph, [150, 150, 150], 1.5, [6, 5]);
    c.text(m.label, x + 4, top + ph - 20, [110, 110, 110], 2, "left");
  }
  if (spec.diagonal) c.line(X(x0), Y(y0), X(x1), Y(y1), [160, 160, 160], 1.5, [6, 5]);
  for (const s of spec.series) {
    const pts = s.x.map((x, i) => [x, s.y[i]] as const).filter(([x, y]) =>
      Number.isFinite(x) && Number.isFinite(y) && (!spec.logY || y > 0)
    );
    if (s.lines !== false) {
      for (let i = 1; i < pts.length; i++) {
        c.line(X(pts[i - 1][0]), Y(pts[i - 1][1]), X(pts[i][0]), Y(pts[i][1]), s.color, 2.5, s.dash);
      }
    }
    if (s.markers || pts.length === 1) {
      for (const [x, y] of pts) c.circle(X(x), Y(y), s.lines === false ? 2 : 3.5, s.color);
    }
  }
  c.text(spec.title, W / 2, 15, ink, 2, "center");
  c.text(spec.xLabel, left + pw / 2, top + ph + 38, ink, 2, "center");
  c.textVertical(spec.yLabel + (spec.logY ? " (log scale)" : ""), 18, top + ph / 2, ink, 2);
  // legend
  let lx = left + pw - 10;
  const widths = spec.series.map((s) => textWidth(s.name, 2) + 36);
  const lw = Math.max(...widths, 0);
  const lh = spec.series.length * 22 + 10;
  lx -= lw;
  c.fillRect(lx - 6, top + 8, lw + 6, lh, [255, 255, 255], 0.85);
  spec.series.forEach((s, i) => {
    const y = top + 20 + i * 22;
    c.line(lx, y, lx + 24, y, s.color, 3, s.dash);
    c.text(s.name, lx + 32, y - 7, ink, 2);
  });
  (spec.notes ?? []).forEach((n, i) => c.text(n, left, H + i * 20, ink, 2));
  return c;
}
