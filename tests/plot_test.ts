import assert from "node:assert/strict";
import { fmtTick, logTicks, niceTicks, renderChart } from "../lib/plot/chart.ts";
import { renderFieldMaps } from "../lib/plot/fieldmap.ts";
import { writeFigure } from "../lib/plot/figure.ts";
import { svgToPng } from "../lib/plot/raster.ts";
import { Svg } from "../lib/plot/svg.ts";
import { tempDir } from "./_helpers.ts";

const pngSize = (png: Uint8Array) => {
  const v = new DataView(png.buffer, png.byteOffset);
  return [v.getUint32(16), v.getUint32(20)];
};

Deno.test("PNG figures are rendered from the SVG with the shipped font: text is drawn, not dropped", async () => {
  const doc = (text: string) => {
    const s = new Svg(300, 80);
    s.text(10, 50, text, { size: 28 });
    return s.toString();
  };
  const blank = await svgToPng(doc(""));
  const typed = await svgToPng(doc("Training gpqy"));
  assert.deepEqual(Array.from(typed.subarray(1, 4)), [0x50, 0x4e, 0x47]);
  assert.deepEqual(pngSize(typed), [300, 80]);
  // a renderer without fonts silently draws no text: the two images would then be the same
  assert.ok(typed.length > blank.length + 300, `text adds ink: ${blank.length} -> ${typed.length} bytes`);
  assert.deepEqual(pngSize(await svgToPng(doc("x"), 2)), [600, 160], "scale 2 doubles the pixels");
});

Deno.test("axis ticks: whole numbers where x counts, readable log ticks, short labels", () => {
  for (const [lo, hi] of [[0.75, 3.25], [0.75, 7.25], [0.5, 40.5], [0.75, 1.25]]) {
    const t = niceTicks(lo, hi, 8, true);
    assert.ok(t.length >= 1 && t.every((v) => Number.isInteger(v)), `${lo}..${hi}: ${t}`);
  }
  assert.deepEqual(logTicks(0.001, 1.2), [0.001, 0.01, 0.1, 1]);
  const narrow = logTicks(0.09, 0.16);
  assert.ok(narrow.length >= 3 && narrow.every((v) => v >= 0.09 && v <= 0.16), `${narrow}`);
  assert.ok(narrow.every((v) => fmtTick(v).length <= 5), narrow.map(fmtTick).join(" "));
  assert.equal(fmtTick(0.00002), "2e-5");
  assert.equal(fmtTick(250000), "2.5e5");
  assert.equal(fmtTick(0.125), "0.125");
});

Deno.test("a chart's legend draws a point series as points and names the identity line", () => {
  const svg = renderChart({
    title: "Predicted vs true",
    xLabel: "true",
    yLabel: "predicted",
    diagonal: true,
    series: [{ name: "model", x: [0, 1, 2], y: [0.1, 1.1, 1.9], color: [0, 0, 255], lines: false }],
  }).toString();
  assert.ok(!/<polyline[^>]*stroke="rgb\(0,0,255\)"/.test(svg), "no line joins the points");
  assert.match(svg, /<path d="M[^"]+" fill="rgb\(0,0,255\)"/);
  assert.match(svg, />identity \(y = x\)</);
  assert.match(svg, /stroke-dasharray/);
});

Deno.test("field maps: axes in metres, true and predicted on one colour scale, error on a scale centred on 0", async () => {
  const nx = 8, ny = 2, nz = 4;
  const values = new Map<number, { truth: number; pred: number }>();
  for (let l = 0; l < nz; l++) {
    for (let c = 0; c < nx; c++) values.set(l * ny * nx + c + 1, { truth: c * 4, pred: c * 4 + (l - 1.5) });
  }
  const svg = (await renderFieldMaps({ nx, ny, nz, length: 2, height: 1 }, values, "c at step 3")).toString();
  assert.equal([...svg.matchAll(/>x \(m\)</g)].length, 3);
  assert.equal([...svg.matchAll(/>z \(m\)</g)].length, 3);
  // colour-bar tick labels: the true and predicted bars carry the same ticks, the error bar is symmetric
  const bars = [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" font-size="12" fill="[^"]+">([^<]+)</g)];
  const byBar = new Map<string, string[]>();
  for (const m of bars.filter((m) => Number.isFinite(Number(m[2])))) {
    byBar.set(m[1], [...(byBar.get(m[1]) ?? []), m[2]]);
  }
  const ticks = [...byBar.values()];
  assert.equal(ticks.length, 3, JSON.stringify(ticks));
  assert.deepEqual(ticks[0], ticks[1]);
  assert.ok(ticks[2].includes("0") && ticks[2].some((t) => t.startsWith("-")), `${ticks[2]}`);
  assert.equal([...svg.matchAll(/<image /g)].length, 6, "three panels and three colour bars");
});

Deno.test("writeFigure writes an SVG and a PNG of the same figure", async () => {
  await using t = await tempDir();
  const s = new Svg(200, 100);
  s.text(10, 40, "hello");
  const paths = await writeFigure(`${t.dir}/fig`, s);
  assert.deepEqual(paths, [`${t.dir}/fig.svg`, `${t.dir}/fig.png`]);
  assert.match(await Deno.readTextFile(`${t.dir}/fig.svg`), />hello<\/text>/);
  assert.deepEqual(pngSize(await Deno.readFile(`${t.dir}/fig.png`)), [200, 100]);
});
