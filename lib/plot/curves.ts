/**
 * Training curves across sessions: `training_curves.svg` and `training_curves.png` (written after every epoch;
 * integer epoch ticks, log scale when the losses allow, the best epoch ringed, resume points marked) and
 * `training_curves.html` (plotly.js inlined, so it opens offline; linear/log switch), which is 4-5 MB and so is
 * written only when asked (the training loop asks every few epochs and when a session ends).
 *
 * @module
 */

import { COLORS, niceTicks, renderChart } from "./chart.ts";
import { writeFigure } from "./figure.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { findAsset } from "../io/assets.ts";
import type { Svg } from "./svg.ts";

/** What the curves show. */
export interface CurveData {
  /** Run name, for the title. */
  run: string;
  /** Training loss per epoch (epoch 1 first). */
  train: number[];
  /** Validation loss per epoch. */
  val: number[];
  /** Learning rate at the end of each epoch (runs of the first checkpoint format have none). */
  lr?: number[];
  /** Epochs (1-based) at which a session resumed the run. */
  resumes: number[];
  /** How many sessions trained the run. */
  sessions: number;
  /** Training time of all sessions, seconds (gaps between sessions excluded). */
  wallSeconds: number;
}

/** The index of the lowest finite validation loss, or -1. */
function bestIndex(d: CurveData): number {
  let best = -1;
  d.val.forEach((v, i) => {
    if (Number.isFinite(v) && (best < 0 || v < d.val[best])) best = i;
  });
  return best;
}

/** Summary line items shared by both figures. */
export function curveSummary(d: CurveData): string[] {
  const best = bestIndex(d);
  const h = Math.floor(d.wallSeconds / 3600),
    m = Math.floor((d.wallSeconds % 3600) / 60),
    s = Math.round(d.wallSeconds % 60);
  return [
    `total epochs ${d.train.length}`,
    best >= 0
      ? `best validation loss ${d.val[best].toPrecision(4)} at epoch ${best + 1}`
      : "no validation loss yet",
    `sessions ${d.sessions}`,
    `training time ${h}h${String(m).padStart(2, "0")}m${String(s).padStart(2, "0")}s`,
  ];
}

let plotlySource: string | null | undefined;
/**
 * The plotly.js source: from the npm package, else `GINO_GW_PLOTLY` or a `plotly.min.js` beside the executable
 * (compiled binaries); null when none is found (the page then says so and lists the numbers).
 */
function plotly(): string | null {
  if (plotlySource !== undefined) return plotlySource;
  const path = findAsset("plotly.js-dist-min", "plotly.min.js", () => Deno.env.get("GINO_GW_PLOTLY"));
  plotlySource = path ? Deno.readTextFileSync(path) : null;
  return plotlySource;
}

/** The learning rate per epoch as a series (epochs without one left out), or undefined when none is known. */
function lrSeries(d: CurveData): { x: number[]; y: number[] } | undefined {
  const x: number[] = [], y: number[] = [];
  (d.lr ?? []).forEach((v, i) => {
    if (Number.isFinite(v) && v > 0) {
      x.push(i + 1);
      y.push(v);
    }
  });
  return x.length ? { x, y } : undefined;
}

/** The HTML page (self-contained). */
export function curvesHtml(d: CurveData): string {
  const epochs = d.train.map((_, i) => i + 1);
  const best = bestIndex(d);
  const data: Record<string, unknown>[] = [
    { x: epochs, y: d.train, name: "train loss", mode: "lines+markers", line: { color: "#1f77b4" } },
    { x: epochs, y: d.val, name: "validation loss", mode: "lines+markers", line: { color: "#ff7f0e" } },
  ];
  const lr = lrSeries(d);
  if (lr) {
    data.push({
      x: lr.x,
      y: lr.y,
      name: "learning rate (end of epoch)",
      mode: "lines",
      yaxis: "y2",
      line: { color: "#7f7f7f", dash: "dot" },
    });
  }
  if (best >= 0) {
    data.push({
      x: [best + 1],
      y: [d.val[best]],
      name: `best (epoch ${best + 1})`,
      mode: "markers",
      marker: { size: 16, color: "rgba(0,0,0,0)", line: { color: "#222", width: 2 } },
    });
  }
  const shapes = d.resumes.map((e) => ({
    type: "line",
    x0: e - 0.5,
    x1: e - 0.5,
    yref: "paper",
    y0: 0,
    y1: 1,
    line: { dash: "dash", color: "#888" },
  }));
  const annotations = d.resumes.map((e) => ({
    x: e - 0.5,
    yref: "paper",
    y: 1,
    text: `resumed (epoch ${e})`,
    showarrow: false,
    xanchor: "left",
  }));
  const positive = d.train.concat(d.val).every((v) => !Number.isFinite(v) || v > 0);
  const layout = {
    title: { text: `Training curves: ${d.run}` },
    xaxis: { title: { text: "epoch" }, tickvals: niceTicks(1, Math.max(1, epochs.length), 10, true) },
    yaxis: { title: { text: "relative L2 loss" }, type: positive ? "log" : "linear" },
    ...(lr
      ? {
        yaxis2: {
          title: { text: "learning rate" },
          type: "log",
          overlaying: "y",
          side: "right",
          showgrid: false,
        },
      }
      : {}),
    legend: { orientation: "h", y: -0.15 },
    font: { family: "DejaVu Sans, Verdana, sans-serif" },
    shapes,
    annotations,
    updatemenus: [{
      buttons: [
        { label: "log", method: "relayout", args: [{ "yaxis.type": "log" }] },
        { label: "linear", method: "relayout", args: [{ "yaxis.type": "linear" }] },
      ],
      x: 0,
      y: 1.15,
    }],
  };
  const json = (v: unknown) => JSON.stringify(v).replaceAll("</", "<\\/");
  const summary = curveSummary(d).join(" &middot; ");
  const lib = plotly();
  const fallback = lib
    ? ""
    : `<p>plotly.js was not found next to this program, so the interactive chart is missing; ` +
      `see training_curves.svg. Epoch, train loss, validation loss:</p><pre>${
        epochs.map((e, i) => `${e}\t${d.train[i]}\t${d.val[i]}`).join("\n")
      }</pre>`;
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Training curves: ${d.run}</title>
<script>${lib ?? "window.Plotly = { newPlot() {} };"}</script></head>
<body style="font-family: sans-serif">
<div id="curves" style="width: 100%; height: 80vh"></div>
<p id="summary">${summary}</p>
${fallback}
<script>
const data = ${json(data)};
const layout = ${json(layout)};
Plotly.newPlot("curves", data, layout, { responsive: true });
</script>
</body></html>
`;
}

/** The curves as an SVG chart (the PNG is rendered from it). */
export function curvesSvg(d: CurveData): Svg {
  const epochs = d.train.map((_, i) => i + 1);
  const best = bestIndex(d);
  return renderChart({
    title: `Training curves: ${d.run}`,
    xLabel: "epoch",
    yLabel: "relative L2 loss",
    logY: d.train.concat(d.val).every((v) => !Number.isFinite(v) || v > 0),
    integerX: true,
    series: [
      { name: "train loss", x: epochs, y: d.train, color: COLORS.blue, markers: epochs.length <= 60 },
      { name: "validation loss", x: epochs, y: d.val, color: COLORS.orange, markers: epochs.length <= 60 },
    ],
    right: lrSeries(d) && {
      label: "learning rate",
      logY: true,
      series: [{ name: "learning rate", ...lrSeries(d)!, color: COLORS.grey, dash: [3, 3] }],
    },
    marks: d.resumes.map((e) => ({ x: e - 0.5, label: `resumed (epoch ${e})` })),
    highlight: best >= 0 ? { x: best + 1, y: d.val[best], label: `best: epoch ${best + 1}` } : undefined,
    notes: (([a, b, c2, e]) => [`${a}, ${b}`, `${c2}, ${e}`])(curveSummary(d)),
  });
}

/**
 * Writes `training_curves.svg` and `.png` into `dir`, and with `html` also `training_curves.html`. Returns the
 * paths written.
 */
export async function writeCurves(
  dir: string,
  d: CurveData,
  options: { html?: boolean } = {},
): Promise<string[]> {
  const written = await writeFigure(`${dir}/training_curves`, curvesSvg(d));
  if (options.html) {
    await writeTextFileAtomic(`${dir}/training_curves.html`, curvesHtml(d));
    written.push(`${dir}/training_curves.html`);
  }
  return written;
}
