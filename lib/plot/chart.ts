/**
 * Line and scatter charts as SVG: axes with readable ticks (integer-only where x counts something, decades and
 * 1-2-5 steps on a log scale), a legend whose symbols match the series (lines, points or both), vertical marks
 * (e.g. resume points), one highlighted point (e.g. the best epoch) and an identity line for predicted-vs-true.
 *
 * @module
 */

import { INK, Svg, textWidth } from "./svg.ts";
import type { Rgb } from "./svg.ts";

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
  /** Draw markers at the points (with or without lines). */
  markers?: boolean;
  /** Draw lines between points (default true); false: a point series. */
  lines?: boolean;
  /** Dash pattern: on and off lengths in pixels (repeated). */
  dash?: number[];
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
  /** Logarithmic y axis (non-positive values are left out). */
  logY?: boolean;
  /** x counts something (epochs, steps): ticks at integers only. */
  integerX?: boolean;
  /** Vertical marks at x positions (e.g. resume points). */
  marks?: { x: number; label: string }[];
  /** One point ringed and labelled (e.g. the best epoch). */
  highlight?: { x: number; y: number; label: string };
  /** Lines of text under the plot. */
  notes?: string[];
  /** A dashed identity line y = x on equal axis ranges (predicted vs true plots). */
  diagonal?: boolean;
  /** A second y axis on the right (e.g. the learning rate beside the losses) with its own series. */
  right?: { label: string; series: Series[]; logY?: boolean };
  /** Image width in pixels. */
  width?: number;
  /** Image height in pixels (the notes add to it). */
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

/** About `count` evenly spaced round values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten). */
export function niceTicks(lo: number, hi: number, count = 6, integer = false): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step === 2.5 * mag ? 2 * mag : step));
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/** The right-hand axis: its own scale over the plot's height, ticks and label on the right, its series. */
function drawRightAxis(
  svg: Svg,
  r: NonNullable<ChartSpec["right"]>,
  p: { left: number; top: number; pw: number; ph: number; X: (x: number) => number; clip: string },
): void {
  const ty = (v: number) => (r.logY ? Math.log10(v) : v);
  const pts = r.series.flatMap((s) => finite(s, r.logY));
  if (!pts.length) return;
  let ly0 = Math.min(...pts.map((q) => ty(q[1]))), ly1 = Math.max(...pts.map((q) => ty(q[1])));
  if (ly1 === ly0) [ly0, ly1] = [ly0 - (r.logY ? 0.5 : 1), ly1 + (r.logY ? 0.5 : 1)];
  const pad = (ly1 - ly0) * 0.06;
  [ly0, ly1] = [ly0 - pad, ly1 + pad];
  const Y = (y: number) => p.top + p.ph - ((ty(y) - ly0) / (ly1 - ly0)) * p.ph;
  const xr = p.left + p.pw;
  const ticks = r.logY ? logTicks(Math.pow(10, ly0), Math.pow(10, ly1)) : niceTicks(ly0, ly1);
  for (const v of ticks) {
    const y = Y(v);
    if (y < p.top - 0.5 || y > p.top + p.ph + 0.5) continue;
    svg.line(xr, y, xr + 5, y, { color: INK });
    svg.text(xr + 8, y, fmtTick(v), { anchor: "start", middle: true, size: 13 });
  }
  svg.text(xr + 74, p.top + p.ph / 2, r.label + (r.logY ? " (log scale)" : ""), {
    anchor: "middle",
    size: 14,
    rotate: -90,
  });
  for (const s of r.series) {
    const run = finite(s, r.logY).map(([x, y]) => [p.X(x), Y(y)] as [number, number]);
    svg.polyline(run, { color: s.color, width: 1.8, dash: s.dash }, p.clip);
  }
}

/** Ticks of a log axis: decades, or 1-2-5 (then 1-2-3-5-7) steps when the range spans less than ~3 decades. */
export function logTicks(lo: number, hi: number): number[] {
  for (const mantissas of [[1], [1, 2, 5], [1, 1.5, 2, 3, 5, 7]]) {
    const out: number[] = [];
    for (let k = Math.floor(Math.log10(lo)) - 1; k <= Math.ceil(Math.log10(hi)); k++) {
      for (const m of mantissas) {
        const v = Number((m * Math.pow(10, k)).toPrecision(6));
        if (v >= lo && v <= hi) out.push(v);
      }
    }
    if (out.length >= 4) return out;
  }
  return niceTicks(lo, hi, 4);
}

/** A tick label: plain decimals between 0.001 and 10,000, else `2e-5`. */
export function fmtTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) {
    const [m, e] = v.toExponential().split("e");
    return `${Number(Number(m).toPrecision(2))}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(4)));
}

const finite = (s: Series, logY?: boolean) =>
  s.x.map((x, i) => [x, s.y[i]] as [number, number]).filter(([x, y]) =>
    Number.isFinite(x) && Number.isFinite(y) && (!logY || y > 0)
  );

/** Renders a chart as an SVG document. */
export function renderChart(spec: ChartSpec): Svg {
  const W = spec.width ?? 900, H = spec.height ?? 560;
  const notesH = (spec.notes?.length ?? 0) * 20;
  const svg = new Svg(W, H + notesH);
  const left = 88, right = spec.right ? 88 : 28, top = 66, bottom = 58;
  const pw = W - left - right, ph = H - top - bottom;
  const all = spec.series.flatMap((s) => finite(s, spec.logY));
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (!all.length) [x0, x1, y0, y1] = [0, 1, spec.logY ? 1 : 0, spec.logY ? 10 : 1];
  if (spec.diagonal) {
    x0 = y0 = Math.min(x0, y0);
    x1 = y1 = Math.max(x1, y1);
  }
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (spec.integerX) [x0, x1] = [x0 - 0.25, x1 + 0.25];
  const ty = (v: number) => (spec.logY ? Math.log10(v) : v);
  let ly0 = ty(y0), ly1 = ty(y1);
  if (ly1 === ly0) [ly0, ly1] = [ly0 - (spec.logY ? 0.5 : 1), ly1 + (spec.logY ? 0.5 : 1)];
  const pad = (ly1 - ly0) * 0.06;
  ly0 -= pad;
  ly1 += pad;
  if (spec.diagonal) [x0, x1] = [ly0, ly1];
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + ph - ((ty(y) - ly0) / (ly1 - ly0)) * ph;
  const grid: Rgb = [228, 228, 228];

  // grid, ticks and their labels
  const yt = spec.logY ? logTicks(Math.pow(10, ly0), Math.pow(10, ly1)) : niceTicks(ly0, ly1);
  for (const v of yt) {
    const y = Y(v);
    if (y < top - 0.5 || y > top + ph + 0.5) continue;
    svg.line(left, y, left + pw, y, { color: grid });
    svg.line(left - 5, y, left, y, { color: INK });
    svg.text(left - 8, y, fmtTick(v), { anchor: "end", middle: true, size: 13 });
  }
  for (const v of niceTicks(x0, x1, Math.max(3, Math.floor(pw / 90)), spec.integerX)) {
    const x = X(v);
    if (x < left - 0.5 || x > left + pw + 0.5) continue;
    svg.line(x, top, x, top + ph, { color: grid });
    svg.line(x, top + ph, x, top + ph + 5, { color: INK });
    svg.text(x, top + ph + 20, fmtTick(v), { anchor: "middle", size: 13 });
  }
  svg.rect(left, top, pw, ph, "none", { color: INK, width: 1.2 });

  // marks, identity line, series, highlight
  for (const m of spec.marks ?? []) {
    const x = X(m.x);
    svg.line(x, top, x, top + ph, { color: [140, 140, 140], width: 1.2, dash: [5, 4] });
    svg.text(x - 4, top + 6, m.label, { size: 11, color: [110, 110, 110], rotate: -90, anchor: "end" });
  }
  const clip = svg.clipRect(left, top, pw, ph);
  if (spec.diagonal) {
    svg.polyline(
      [[X(x0), Y(x0)], [X(x1), Y(x1)]],
      { color: [110, 110, 110], width: 1.5, dash: [7, 5] },
      clip,
    );
  }
  for (const s of spec.series) {
    const pts = finite(s, spec.logY).map(([x, y]) => [X(x), Y(y)] as [number, number]);
    if (s.lines !== false) {
      // a gap (non-finite value) splits the line
      let run: [number, number][] = [];
      s.x.forEach((x, i) => {
        const y = s.y[i];
        if (Number.isFinite(x) && Number.isFinite(y) && (!spec.logY || y > 0)) run.push([X(x), Y(y)]);
        else {
          svg.polyline(run, { color: s.color, width: 2.2, dash: s.dash }, clip);
          run = [];
        }
      });
      svg.polyline(run, { color: s.color, width: 2.2, dash: s.dash }, clip);
    }
    if (s.lines === false) svg.dots(pts, 2.2, s.color, 0.55);
    else if (s.markers || pts.length === 1) {
      for (const [x, y] of pts) svg.circle(x, y, 3.5, s.color, { color: [255, 255, 255], width: 1 });
    }
  }
  if (spec.right) drawRightAxis(svg, spec.right, { left, top, pw, ph, X, clip });
  if (spec.highlight && Number.isFinite(spec.highlight.y) && (!spec.logY || spec.highlight.y > 0)) {
    const { x, y, label } = spec.highlight;
    const hx = X(x), hy = Y(y);
    svg.circle(hx, hy, 8, "none", { color: INK, width: 1.8 });
    const rightSide = hx < left + pw - textWidth(label, 13) - 20;
    // below the ring, unless that runs into the bottom axis
    const ly = hy + 22 < top + ph - 4 ? hy + 22 : hy - 14;
    svg.text(rightSide ? hx + 12 : hx - 12, ly, label, {
      size: 13,
      anchor: rightSide ? "start" : "end",
    });
  }

  // title, axis labels, legend (a row between the title and the plot), notes
  svg.text(W / 2, 26, spec.title, { anchor: "middle", size: 17, bold: true });
  svg.text(left + pw / 2, top + ph + 44, spec.xLabel, { anchor: "middle", size: 14 });
  svg.text(22, top + ph / 2, spec.yLabel + (spec.logY ? " (log scale)" : ""), {
    anchor: "middle",
    size: 14,
    rotate: -90,
  });
  const entries: { name: string; draw: (x: number, y: number) => void }[] = [
    ...spec.series,
    ...(spec.right?.series ?? []),
  ].map((s) => ({
    name: s.name,
    draw: (x, y) => {
      if (s.lines !== false) svg.line(x, y, x + 26, y, { color: s.color, width: 2.5, dash: s.dash });
      if (s.lines === false) {
        for (const dx of [5, 13, 21]) svg.circle(x + dx, y + (dx === 13 ? -3 : 2), 2.6, s.color);
      } else if (s.markers) svg.circle(x + 13, y, 3.5, s.color, { color: [255, 255, 255], width: 1 });
    },
  }));
  if (spec.diagonal) {
    entries.push({
      name: "identity (y = x)",
      draw: (x, y) => svg.line(x, y, x + 26, y, { color: [110, 110, 110], width: 1.5, dash: [7, 5] }),
    });
  }
  let lx = left + pw;
  for (let i = entries.length - 1; i >= 0; i--) {
    lx -= textWidth(entries[i].name, 13) + 34 + (i < entries.length - 1 ? 18 : 0);
  }
  lx = Math.max(left, lx);
  for (const e of entries) {
    e.draw(lx, top - 14);
    svg.text(lx + 32, top - 14, e.name, { size: 13, middle: true });
    lx += textWidth(e.name, 13) + 34 + 18;
  }
  (spec.notes ?? []).forEach((t, i) => svg.text(left, H + 4 + i * 20, t, { size: 13 }));
  return svg;
}
