/**
 * Training curves across sessions: `training_curves.html` (plotly.js inlined, so it opens offline; linear/log
 * switch) and `training_curves.png` (rendered without a browser), both with the resume points marked and a summary.
 *
 * @module
 */

import { createRequire } from "node:module";
import { COLORS, renderChart } from "./chart.ts";
import { encodePng } from "./png.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";

/** What the curves show. */
export interface CurveData {
  /** Run name, for the title. */
  run: string;
  /** Training loss per epoch (epoch 1 first). */
  train: number[];
  /** Validation loss per epoch. */
  val: number[];
  /** Epochs (1-based) at which a session resumed the run. */
  resumes: number[];
  /** How many sessions trained the run. */
  sessions: number;
  /** Training time of all sessions, seconds (gaps between sessions excluded). */
  wallSeconds: number;
}

/** Summary line items shared by both figures. */
export function curveSummary(d: CurveData): string[] {
  let best = -1;
  d.val.forEach((v, i) => {
    if (Number.isFinite(v) && (best < 0 || v < d.val[best])) best = i;
  });
  const h = Math.floor(d.wallSeconds / 3600),
    m = Math.floor((d.wallSeconds % 3600) / 60),
    s = Math.round(d.wallSeconds % 60);
  return [
    `total epochs ${d.train.length}`,
    best >= 0
      ? `best validation loss ${d.val[best].toPrecision(4)} at epoch ${best + 1}`
      : "no validation loss yet",
    `sessions ${d.sessions}`,
    `wall time ${h}h${String(m).padStart(2, "0")}m${String(s).padStart(2, "0")}s`,
  ];
}

let plotlySource: string | null | undefined;
/**
 * The plotly.js source: from the npm package, else `GINO_GW_PLOTLY` or a `plotly.min.js` beside the executable
 * (compiled binaries); null when none is found (the page then says so and lists the numbers).
 */
function plotly(): string | null {
  if (plotlySource !== undefined) return plotlySource;
  const candidates: (() => string | undefined)[] = [
    () => createRequire(import.meta.url).resolve("plotly.js-dist-min"),
    () => Deno.env.get("GINO_GW_PLOTLY"),
    () => Deno.execPath().replace(/[^/\\]*$/, "plotly.min.js"),
    () => new URL("./plotly.min.js", Deno.mainModule).pathname,
  ];
  plotlySource = null;
  for (const c of candidates) {
    try {
      const path = c();
      if (path) {
        plotlySource = Deno.readTextFileSync(path);
        break;
      }
    } catch {
      // try the next place
    }
  }
  return plotlySource;
}

/** The HTML page (self-contained). */
export function curvesHtml(d: CurveData): string {
  const epochs = d.train.map((_, i) => i + 1);
  const data = [
    { x: epochs, y: d.train, name: "train loss", mode: "lines+markers", line: { color: "#1f77b4" } },
    { x: epochs, y: d.val, name: "validation loss", mode: "lines+markers", line: { color: "#ff7f0e" } },
  ];
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
  const layout = {
    title: { text: `Training curves: ${d.run}` },
    xaxis: { title: { text: "epoch" } },
    yaxis: { title: { text: "relative L2 loss" }, type: "linear" },
    shapes,
    annotations,
    updatemenus: [{
      buttons: [
        { label: "linear", method: "relayout", args: [{ "yaxis.type": "linear" }] },
        { label: "log", method: "relayout", args: [{ "yaxis.type": "log" }] },
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
      `see training_curves.png. Epoch, train loss, validation loss:</p><pre>${
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

/** Writes `training_curves.html` and `training_curves.png` into `dir`. */
export async function writeCurves(dir: string, d: CurveData): Promise<void> {
  const epochs = d.train.map((_, i) => i + 1);
  const canvas = renderChart({
    title: `Training curves: ${d.run}`,
    xLabel: "epoch",
    yLabel: "relative L2 loss",
    logY: d.train.concat(d.val).every((v) => !Number.isFinite(v) || v > 0),
    series: [
      { name: "train loss", x: epochs, y: d.train, color: COLORS.blue, markers: true },
      { name: "validation loss", x: epochs, y: d.val, color: COLORS.orange, markers: true },
    ],
    marks: d.resumes.map((e) => ({ x: e - 0.5, label: "resumed" })),
    notes: (([a, b, c2, e]) => [`${a}, ${b}`, `${c2}, ${e}`])(curveSummary(d)),
  });
  await writeFileAtomic(`${dir}/training_curves.png`, await encodePng(canvas));
  await writeTextFileAtomic(`${dir}/training_curves.html`, curvesHtml(d));
}
