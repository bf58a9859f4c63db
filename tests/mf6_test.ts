// MODFLOW 6 binary files in, ParaView files out: the readers against real MODFLOW 6 output (tests/fixtures/
// mf6-binary, from FloPy's examples), the Henry generator's MODFLOW 6 files against its CSV files, bad input, and
// the whole path MODFLOW 6 files -> prepare -> train -> predict --vtu, read back with VTK itself.
import assert from "node:assert/strict";
import {
  disItems,
  encodeGrb,
  Mf6Error,
  Mf6OutputFile,
  Mf6OutputWriter,
  readGrbItems,
  readMf6Grid,
} from "../lib/io/mf6.ts";
import type { GrbItem, Mf6Grid } from "../lib/io/mf6.ts";
import { prismCells, vertexCells, VTK } from "../lib/io/vtu.ts";
import { encodeVtu } from "../lib/io/vtu.ts";
import { readNpy } from "../lib/io/npy.ts";
import { readNumericCsv } from "../lib/io/csv.ts";
import { FIXTURES, runScript, tempDir, TINY_TRAIN_ARGS } from "./_helpers.ts";

const MF6 = `${FIXTURES}mf6-binary`;
const ROOT = new URL("../", import.meta.url).pathname;
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/** VTK's reading of ParaView files (Debian python3-vtk9), or undefined where VTK is missing. */
async function vtkRead(files: string[]): Promise<Record<string, unknown> | undefined> {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${ROOT}tests/tools/vtk_read.py`, ...files],
    stdout: "piped",
    stderr: "piped",
  }).output().catch(() => undefined);
  if (!out || !out.success) {
    const why = out ? new TextDecoder().decode(out.stderr).trim().split("\n").pop() : "no /usr/bin/python3";
    if (/No module named 'vtk'|no \/usr\/bin\/python3/.test(why ?? "")) return undefined;
    throw new Error(`vtk_read.py failed: ${why}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
const vtkMissing = () =>
  console.error("VTK read-back skipped: no VTK for /usr/bin/python3 (Debian: apt-get install python3-vtk9)");

Deno.test("readMf6Grid reads DIS, DISV and DISU grid files: sizes, active cells, centres, layers, outlines", async () => {
  const fr = await readMf6Grid(`${MF6}/freyberg.dis.grb`);
  const items = (await readGrbItems(`${MF6}/freyberg.dis.grb`)).items;
  assert.equal(fr.type, "DIS");
  assert.deepEqual([fr.ncells, fr.nlay, fr.nrow, fr.ncol], [800, 1, 40, 20]);
  assert.equal(fr.active.reduce((a, b) => a + b, 0), 705); // IDOMAIN > 0
  const delr = items.get("DELR") as Float64Array, delc = items.get("DELC") as Float64Array;
  const top = items.get("TOP") as Float64Array, botm = items.get("BOTM") as Float64Array;
  const ytot = delc.reduce((a, b) => a + b, 0);
  // cell (row 2, column 3): row 1 is the northernmost
  const n = 1 * 20 + 2;
  assert.ok(Math.abs(fr.x[n] - (delr[0] + delr[1] + delr[2] / 2)) < 1e-9);
  assert.ok(Math.abs(fr.y[n] - (ytot - delc[0] - delc[1] / 2)) < 1e-9);
  assert.ok(Math.abs(fr.z[n] - (top[n] + botm[n]) / 2) < 1e-9);
  assert.equal(fr.outline!.vstart[1], 4);

  const adv = await readMf6Grid(`${MF6}/advgw_tidal.dis.grb`);
  assert.deepEqual([adv.ncells, adv.nlay, adv.ncpl], [450, 3, 150]);
  assert.deepEqual([adv.layer[0], adv.layer[150], adv.layer[449]], [1, 2, 3]);
  assert.equal(adv.top[150], adv.bot[0], "a layer's top is the bottom of the layer above");

  const tri = await readMf6Grid(`${MF6}/tri_model.disv.grb`);
  const ti = (await readGrbItems(`${MF6}/tri_model.disv.grb`)).items;
  assert.equal(tri.type, "DISV");
  assert.deepEqual([tri.ncells, tri.nlay, tri.ncpl], [800, 4, 200]);
  assert.equal(tri.active.reduce((a, b) => a + b, 0), 784);
  assert.equal(tri.x[200 + 7], (ti.get("CELLX") as Float64Array)[7]);
  assert.equal(tri.y[600 + 7], (ti.get("CELLY") as Float64Array)[7]);
  const o = tri.outline!;
  for (let c = 0; c < 200; c++) {
    const vs = Array.from(o.vert.subarray(o.vstart[c], o.vstart[c + 1]));
    assert.equal(vs.length, 3, "triangles (the closing vertex dropped)");
    let area = 0;
    vs.forEach((v, i) => {
      const w = vs[(i + 1) % 3];
      area += o.vx[v] * o.vy[w] - o.vx[w] * o.vy[v];
    });
    assert.ok(area < 0, `cell ${c + 1}: vertices clockwise seen from above`);
  }

  const disu = await readGrbItems(`${MF6}/flow.disu.grb`);
  assert.equal(disu.type, "DISU");
  assert.equal(disu.items.get("NODES"), 121);
  assert.equal(disu.items.get("NJA"), 601);
  assert.equal((disu.items.get("IA") as Int32Array).length, 122);
  await assert.rejects(
    readMf6Grid(`${MF6}/flow.disu.grb`),
    (e: Error) => e instanceof Mf6Error && /CELLX/.test(e.message),
  );

  // a DISU grid with cell centres, and a rotated, shifted DIS grid, written and read back
  await using t = await tempDir();
  await Deno.writeFile(
    `${t.dir}/u.disu.grb`,
    encodeGrb("DISU", [
      ["NODES", "INTEGER", 3],
      ["NJA", "INTEGER", 3],
      ["XORIGIN", "DOUBLE", 10],
      ["YORIGIN", "DOUBLE", 20],
      ["ANGROT", "DOUBLE", 0],
      ["TOP", "DOUBLE", [5, 5, 2]],
      ["BOT", "DOUBLE", [2, 2, 0]],
      ["IA", "INTEGER", [1, 2, 3, 4]],
      ["JA", "INTEGER", [1, 2, 3]],
      ["ICELLTYPE", "INTEGER", [0, 0, 0]],
      ["CELLX", "DOUBLE", [1, 2, 3]],
      ["CELLY", "DOUBLE", [4, 5, 6]],
    ]),
  );
  const u = await readMf6Grid(`${t.dir}/u.disu.grb`);
  assert.deepEqual([Array.from(u.x), Array.from(u.y), Array.from(u.z)], [[11, 12, 13], [24, 25, 26], [
    3.5,
    3.5,
    1,
  ]]);
  const g = { nlay: 1, nrow: 1, ncol: 2, delr: [2, 2], delc: [1] };
  await Deno.writeFile(
    `${t.dir}/r.dis.grb`,
    encodeGrb("DIS", disItems(g, [1, 1], [0, 0], { x: 100, y: 200, angrot: 90 })),
  );
  const r = await readMf6Grid(`${t.dir}/r.dis.grb`);
  // column 2's centre (3, 0.5) turned by 90 degrees about the origin: (-0.5, 3)
  assert.ok(Math.abs(r.x[1] - 99.5) < 1e-12 && Math.abs(r.y[1] - 203) < 1e-12);
});

Deno.test("Mf6OutputFile indexes head and concentration files record by record and reads one step at a time", async () => {
  const grid = await readMf6Grid(`${MF6}/advgw_tidal.dis.grb`);
  const f = await Mf6OutputFile.open(`${MF6}/AdvGW_tidal.hds`, grid);
  assert.equal(f.text, "HEAD");
  assert.equal(f.steps.length, 361);
  assert.equal(f.steps.reduce((a, s) => a + s.records.length, 0), 1083);
  assert.equal(f.steps[0].totim, 1);
  assert.ok(Math.abs(f.steps[360].totim - 31) < 1e-9);
  assert.deepEqual(f.steps[5].records.map((r) => [r.ncol, r.nrow, r.ilay]), [[10, 15, 1], [10, 15, 2], [
    10,
    15,
    3,
  ]]);
  // values against the bytes: record 3 s + l is step s, layer l; its values start 52 bytes in
  const bytes = await Deno.readFile(`${MF6}/AdvGW_tidal.hds`);
  const view = new DataView(bytes.buffer);
  const v = new Float64Array(450);
  for (const s of [0, 100, 360]) {
    await f.readStep(s, v);
    for (const [l, c] of [[0, 0], [1, 77], [2, 149]]) {
      const at = (3 * s + l) * (52 + 1200) + 52 + 8 * c;
      assert.equal(v[l * 150 + c], view.getFloat64(at, true));
    }
  }
  f.close();
  const tri = await readMf6Grid(`${MF6}/tri_model.disv.grb`);
  const th = await Mf6OutputFile.open(`${MF6}/tri_model.hds`, tri);
  assert.deepEqual([th.steps.length, th.steps[0].records.length], [1, 4]);
  const tv = new Float64Array(800);
  await th.readStep(0, tv);
  for (let c = 0; c < 800; c++) assert.equal(Number.isNaN(tv[c]), tri.active[c] === 0, `cell ${c + 1}`);
  th.close();
  const one = { ...tri, ncells: 1, nlay: 1, ncpl: 1 };
  const ucn = await Mf6OutputFile.open(`${MF6}/gwt_mst03.ucn`, one);
  assert.equal(ucn.text, "CONCENTRATION");
  assert.equal(ucn.steps.length, 28);
  const c = new Float64Array(1);
  await ucn.readStep(0, c);
  assert.equal(c[0], 100);
  ucn.close();
});

/** henry --format mf6 into `dir` (and CSV into `csvDir` when given). */
async function henry(dir: string, extra: string[] = [], format = "mf6") {
  const r = await runScript("henry.ts", [
    "--out",
    dir,
    "--nx",
    "12",
    "--nz",
    "6",
    "--ny",
    "2",
    "--steps",
    "40",
    "--save-every",
    "2",
    "--initial-concentration",
    "0",
    "--sea-boundary",
    "fixed",
    "--format",
    format,
    "--quiet",
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
}

Deno.test("bad MODFLOW 6 input: one error naming the file and record, exit 2, nothing written", async () => {
  await using t = await tempDir();
  await henry(`${t.dir}/a`);
  await henry(`${t.dir}/b`, ["--steps", "20"]);
  const cut = await Deno.readFile(`${MF6}/AdvGW_tidal.hds`);
  await Deno.writeFile(`${t.dir}/cut.hds`, cut.subarray(0, cut.length - 100));
  // cut between two records: the last step keeps its first layer's record (52-byte header + values) only
  const perLayer = cut.length / 361 / 3; // AdvGW_tidal: 361 saved steps of 3 layers, double precision
  await Deno.writeFile(`${t.dir}/cut-at-record.hds`, cut.subarray(0, cut.length - 2 * perLayer));
  const grb = await Deno.readFile(`${MF6}/freyberg.dis.grb`);
  grb.set(new TextEncoder().encode("GRID DISX"), 0);
  await Deno.writeFile(`${t.dir}/odd.grb`, grb);
  const cases: [string, string[], RegExp][] = [
    [
      "truncated record",
      ["--mf6-grid", `${MF6}/advgw_tidal.dis.grb`, "--mf6-heads", `${t.dir}/cut.hds`],
      /cut\.hds: record 1083 \(time step \d+ of period \d+, layer 3\) is cut short.*truncated/,
    ],
    [
      "a file cut between two records of its last step",
      ["--mf6-grid", `${MF6}/advgw_tidal.dis.grb`, "--mf6-heads", `${t.dir}/cut-at-record.hds`],
      /cut-at-record\.hds: time step \d+ of period \d+ \(step 361 in the file\) is incomplete: it holds layer\(s\) 1 of the 3 .*truncated file/,
    ],
    [
      "grid and heads of different models",
      ["--mf6-grid", `${MF6}/freyberg.dis.grb`, "--mf6-heads", `${MF6}/AdvGW_tidal.hds`],
      /AdvGW_tidal\.hds: time step 1 of period 1 .*freyberg\.dis\.grb has 1 layer.* different models/,
    ],
    [
      "time steps missing in one file",
      [
        "--mf6-grid",
        `${t.dir}/a/henry.dis.grb`,
        "--mf6-heads",
        `${t.dir}/a/henry.hds`,
        "--mf6-conc",
        `${t.dir}/b/henry.ucn`,
      ],
      /henry\.hds saves 20 time steps, .*b\/henry\.ucn 10: time step 22 of period 1 \(time 0\.022\) is missing/,
    ],
    [
      "unknown grid type",
      ["--mf6-grid", `${t.dir}/odd.grb`, "--mf6-heads", `${MF6}/freyberg.hds`],
      /odd\.grb: grid type 'DISX' is not supported/,
    ],
    [
      "not a grid file",
      ["--mf6-grid", `${MF6}/freyberg.hds`, "--mf6-heads", `${MF6}/freyberg.hds`],
      /freyberg\.hds is not a MODFLOW 6 binary grid file/,
    ],
    ["no model folder", ["--mf6-dir", `${t.dir}/nowhere`], /--mf6-dir .*nowhere: folder not found/],
    [
      "a heads file given as concentrations",
      [
        "--mf6-grid",
        `${t.dir}/a/henry.dis.grb`,
        "--mf6-heads",
        `${t.dir}/a/henry.hds`,
        "--mf6-conc",
        `${t.dir}/a/henry.hds`,
      ],
      /henry\.hds holds HEAD records, not CONCENTRATION: it is not a concentration file; give --mf6-conc the transport/,
    ],
    [
      "a concentration file given as heads",
      ["--mf6-grid", `${t.dir}/a/henry.dis.grb`, "--mf6-heads", `${t.dir}/a/henry.ucn`],
      /henry\.ucn holds CONCENTRATION records, not HEAD: it is not a heads file; pass it as --mf6-conc/,
    ],
    [
      "a grid file given as heads",
      ["--mf6-grid", `${MF6}/freyberg.dis.grb`, "--mf6-heads", `${MF6}/freyberg.dis.grb`],
      /freyberg\.dis\.grb is a MODFLOW 6 binary grid file \(GRID DIS\), not a heads or concentration file: give it to --mf6-grid/,
    ],
    [
      "records of another shape than the grid's layers",
      ["--mf6-grid", `${t.dir}/sq.dis.grb`, "--mf6-heads", `${t.dir}/sq.hds`],
      /sq\.hds: time step 1 of period 1 .*: the record of layer 1 is 100 columns x 1 rows, but the DIS grid .*sq\.dis\.grb has 10 x 10 cells per layer/,
    ],
    [
      "a dry cell in a later step (the patch folder is being written)",
      ["--mf6-grid", `${t.dir}/sq.dis.grb`, "--mf6-heads", `${t.dir}/dry.hds`],
      /time step 3 of period 1 \(time 3\): the head in .*dry\.hds of cell 7 \(layer 1\) has no value \(dry or inactive\)/,
    ],
  ];
  // a 10 x 10 grid of one layer, and heads written as 100 x 1 records
  const sq = {
    nlay: 1,
    nrow: 10,
    ncol: 10,
    delr: new Float64Array(10).fill(1),
    delc: new Float64Array(10).fill(1),
  };
  await Deno.writeFile(
    `${t.dir}/sq.dis.grb`,
    encodeGrb("DIS", disItems(sq, new Float64Array(100), new Float64Array(100).fill(-1))),
  );
  const w = await Mf6OutputWriter.create(`${t.dir}/sq.hds`, "HEAD");
  for (let k = 1; k <= 3; k++) {
    await w.record(
      { kstp: k, kper: 1, pertim: k, totim: k, ncol: 100, nrow: 1, ilay: 1 },
      new Float64Array(100),
    );
  }
  await w.close();
  // the same grid's heads as 10 x 10 records, cell 7 dry (MODFLOW 6's HDRY) at step 3
  const dry = await Mf6OutputWriter.create(`${t.dir}/dry.hds`, "HEAD");
  for (let k = 1; k <= 4; k++) {
    const h = new Float64Array(100).fill(1 + k / 10);
    if (k === 3) h[6] = -1e30;
    await dry.record({ kstp: k, kper: 1, pertim: k, totim: k, ncol: 10, nrow: 10, ilay: 1 }, h);
  }
  await dry.close();
  for (const [what, args, msg] of cases) {
    const out = `${t.dir}/out`;
    const r = await runScript("prepare.ts", [
      "--base-data-dir",
      out,
      "--slice-split",
      "1",
      "--n-patches",
      "2",
      ...args,
    ]);
    assert.equal(r.code, 2, `${what}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${what}: one line: ${r.stderr}`);
    assert.match(lines[0], msg, what);
    assert.ok(!(await exists(out)), `${what}: nothing written`);
  }
});

/** The items of a grid file, as MODFLOW 6 wrote them, with a CRS item after ANGROT (as MODFLOW 6 writes one). */
async function withCrs(
  path: string,
  crs: string,
): Promise<{ type: "DIS" | "DISV" | "DISU"; bytes: Uint8Array }> {
  const { type, items } = await readGrbItems(path);
  const list: GrbItem[] = [];
  for (const [name, v] of items) {
    if (typeof v === "string") list.push([name, "CHARACTER", v]);
    else if (typeof v === "number") {
      list.push([
        name,
        Number.isInteger(v) && name !== "ANGROT" && !/ORIGIN/.test(name) ? "INTEGER" : "DOUBLE",
        v,
      ]);
    } else list.push([name, v instanceof Float64Array ? "DOUBLE" : "INTEGER", v]);
    if (name === "ANGROT") list.push(["CRS", "CHARACTER", crs]);
  }
  return { type: type as "DIS" | "DISV" | "DISU", bytes: encodeGrb(type as "DIS", list) };
}

/** True when (x, y) lies inside cell c's outline. */
function insideOutline(g: Mf6Grid, c: number, x: number, y: number): boolean {
  const o = g.outline!, vs = o.vert.subarray(o.vstart[c], o.vstart[c + 1]);
  let inside = false;
  for (let i = 0, j = vs.length - 1; i < vs.length; j = i++) {
    const [xi, yi, xj, yj] = [o.vx[vs[i]], o.vy[vs[i]], o.vx[vs[j]], o.vy[vs[j]]];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

Deno.test("a real DISU grid with vertices and no NVERT, and grid files with a CRS item (DIS, DISV, DISU), are read; the CRS goes to patches.json and the ParaView files", async () => {
  await using t = await tempDir();
  const keating = `${FIXTURES}mf6-disu-vertices/keating.disu.grb`;
  const { items } = await readGrbItems(keating);
  assert.ok(!items.has("NVERT") && items.has("VERTICES"), "as MODFLOW 6 writes a DISU grid file");
  const g = await readMf6Grid(keating);
  assert.equal(g.type, "DISU");
  assert.equal(g.ncells, 324);
  assert.equal(g.outline!.vx.length, (items.get("VERTICES") as Float64Array).length / 2);
  for (let c = 0; c < g.ncells; c++) {
    assert.ok(insideOutline(g, c, g.x[c], g.y[c]), `cell ${c + 1}'s centre in its outline`);
  }
  // a CRS item, as MODFLOW 6 writes it when the model names one: read, kept, and nothing else changes
  for (const file of [`${MF6}/freyberg.dis.grb`, `${MF6}/tri_model.disv.grb`, keating]) {
    const c = await withCrs(file, "EPSG:26916");
    const path = `${t.dir}/crs.${c.type.toLowerCase()}.grb`;
    await Deno.writeFile(path, c.bytes);
    const [a, b] = [await readMf6Grid(file), await readMf6Grid(path)];
    assert.equal(b.crs, "EPSG:26916", file);
    assert.equal(a.crs, undefined);
    for (const k of ["x", "y", "z", "active", "top", "bot"] as const) {
      assert.deepEqual(b[k], a[k], `${file}: ${k}`);
    }
    assert.deepEqual(b.outline, a.outline);
  }
  // the DISU model with a CRS, heads made for it (one record of all nodes per step) -> prepare -> train ->
  // predict --vtu: the CRS in patches.json, in every .vtu (field data, read back by VTK) and in the .pvd
  const grid = `${t.dir}/crs.disu.grb`;
  const w = await Mf6OutputWriter.create(`${t.dir}/keating.hds`, "HEAD");
  for (let k = 1; k <= 16; k++) {
    const h = Float64Array.from(
      { length: g.ncells },
      (_, c) => 10 + Math.sin(g.x[c] / 500 + 0.3 * k) + g.y[c] / 1e4,
    );
    await w.record({ kstp: k, kper: 1, pertim: k, totim: k, ncol: g.ncells, nrow: 1, ilay: 1 }, h);
  }
  await w.close();
  let r = await runScript("prepare.ts", [
    "--base-data-dir",
    `${t.dir}/k`,
    "--mf6-grid",
    grid,
    "--mf6-heads",
    `${t.dir}/keating.hds`,
    "--n-patches",
    "2",
    "--slice-split",
    "1",
    "--quiet",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const meta = JSON.parse(await Deno.readTextFile(`${t.dir}/k/filter_patch/patches.json`));
  assert.equal(meta.source.crs, "EPSG:26916");
  assert.equal(meta.source.grid_type, "DISU");
  r = await runScript("train.ts", [
    "--base-data-dir",
    `${t.dir}/k`,
    ...TINY_TRAIN_ARGS,
    "--epochs",
    "1",
    "--results-dir",
    `${t.dir}/runs`,
    "--run-name",
    "k",
    "--target-cols",
    "head",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = `${t.dir}/pred`;
  r = await runScript("predict.ts", [
    `${t.dir}/runs/k/checkpoints/final_checkpoint.safetensors`,
    "--vtu",
    "--no-figures",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const pvd = await Deno.readTextFile(`${out}/prediction.pvd`);
  assert.match(pvd, /coordinate reference system: EPSG:26916/);
  const first = `${out}/${/file="([^"]+)"/.exec(pvd)![1]}`;
  assert.match(await Deno.readTextFile(first), /<FieldData>/);
  const v = await vtkRead([first]);
  if (!v) return vtkMissing();
  const cells = v[first] as { cells: number; field_data: Record<string, string>; volumes: number[] };
  assert.equal(cells.field_data.CRS, "EPSG:26916");
  assert.equal(cells.cells, 324, "every cell once");
  assert.ok(cells.volumes.every((vol) => vol > 0));
});

Deno.test("henry --format mf6 and prepare: the same patch values as the CSV path, cell by cell", async () => {
  await using t = await tempDir();
  await henry(`${t.dir}/m`);
  await henry(`${t.dir}/c`, [], "csv");
  const prep = ["--n-patches", "2", "--slice-split", "2", "--quiet"];
  let r = await runScript("prepare.ts", [
    "--base-data-dir",
    `${t.dir}/m`,
    "--mf6-dir",
    `${t.dir}/m`,
    ...prep,
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await runScript("prepare.ts", ["--base-data-dir", `${t.dir}/c`, ...prep]);
  assert.equal(r.code, 0, r.stderr);
  const meta = JSON.parse(await Deno.readTextFile(`${t.dir}/m/filter_patch/patches.json`));
  assert.equal(meta.steps, 20, "MODFLOW 6 saves no initial state: steps 2, 4, ..., 40");
  assert.deepEqual(meta.times.slice(0, 2), [0.002, 0.004]);
  assert.deepEqual(meta.missing_columns, []);
  // every cell's series, found by coordinates, equals the CSV path's from its second saved step (t = 2) on
  const series = async (dir: string) => {
    const m = new Map<string, Float64Array>();
    for (const p of ["patch_0000", "patch_0001"]) {
      const xyz = (await readNpy(`${dir}/filter_patch/${p}/core_coords.npy`)).data as Float64Array;
      const obs = await readNpy(`${dir}/filter_patch/${p}/core_obs.npy`);
      const [T, n] = obs.shape;
      for (let i = 0; i < n; i++) {
        const key = Array.from(xyz.subarray(3 * i, 3 * i + 3), (v) => v.toFixed(6)).join();
        m.set(
          key,
          Float64Array.from(
            { length: T * 3 },
            (_, k) => (obs.data as Float32Array)[(Math.floor(k / 3) * n + i) * 3 + (k % 3)],
          ),
        );
      }
    }
    return m;
  };
  const [sm, sc] = [await series(`${t.dir}/m`), await series(`${t.dir}/c`)];
  assert.equal(sm.size, 144);
  for (const [key, v] of sm) {
    const c = sc.get(key);
    assert.ok(c, `cell at ${key} in both`);
    for (let k = 0; k < v.length; k++) {
      const ref = c[k + 3]; // the CSV series starts with the initial state
      assert.ok(
        Math.abs(v[k] - ref) <= 1e-5 * Math.max(1, Math.abs(ref)),
        `${key}, value ${k}: ${v[k]} vs ${ref}`,
      );
    }
  }
});

Deno.test("MODFLOW 6 files -> prepare -> train -> predict --vtu: ParaView files that VTK reads back", async () => {
  await using t = await tempDir();
  await henry(`${t.dir}/m`);
  let r = await runScript("prepare.ts", [
    "--base-data-dir",
    `${t.dir}/m`,
    "--mf6-grid",
    `${t.dir}/m/henry.dis.grb`,
    "--mf6-heads",
    `${t.dir}/m/henry.hds`,
    "--mf6-conc",
    `${t.dir}/m/henry.ucn`,
    "--n-patches",
    "2",
    "--slice-split",
    "2",
    "--quiet",
  ]);
  assert.equal(r.code, 0, r.stderr);
  r = await runScript("train.ts", [
    "--base-data-dir",
    `${t.dir}/m`,
    ...TINY_TRAIN_ARGS,
    "--epochs",
    "2",
    "--results-dir",
    `${t.dir}/runs`,
    "--run-name",
    "m",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = `${t.dir}/pred`;
  r = await runScript("predict.ts", [
    `${t.dir}/runs/m/checkpoints/final_checkpoint.safetensors`,
    "--vtu",
    "--no-figures",
    "--out",
    out,
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.ok(report.vtu_files > 0 && report.vtu_files === report.csv_files);
  const pvd = await Deno.readTextFile(`${out}/prediction.pvd`);
  const files = [...pvd.matchAll(/file="([^"]+)"/g)].map((m) => `${out}/${m[1]}`);
  assert.equal(files.length, report.vtu_files);
  const first = files[0], step = Number(/step_(\d+)/.exec(first)![1]);
  const v = await vtkRead([`${out}/prediction.pvd`, first]);
  if (!v) return vtkMissing();
  const times = v[`${out}/prediction.pvd`] as { time: number }[];
  const meta = JSON.parse(await Deno.readTextFile(`${t.dir}/m/filter_patch/patches.json`));
  assert.deepEqual(times.map((d) => d.time), files.map((f) => meta.times[Number(/step_(\d+)/.exec(f)![1])]));
  const g = v[first] as {
    cells: number;
    types: number[];
    volumes: number[];
    cell_data: Record<string, number[]>;
  };
  assert.equal(g.cells, 144, "every cell once");
  assert.deepEqual(g.types, [VTK.HEXAHEDRON]);
  const cellVolume = (2 / 12) * 1 * (1 / 6); // length / nx x width x height / nz
  for (const vol of g.volumes) assert.ok(Math.abs(vol - cellVolume) < 1e-9, `cell volume ${vol}`);
  // the arrays equal the CSV predictions of the same step, node by node
  const csv = await readNumericCsv(
    `${out}/predictions/${String(step).padStart(4, "0")}.csv`,
    ["node", "mass_concentration_true", "mass_concentration_pred", "mass_concentration_error"],
  );
  const row = new Map(Array.from(csv.columns.node, (n, i) => [n, i]));
  g.cell_data.node.forEach((node, c) => {
    const i = row.get(node)!;
    for (const k of ["true", "pred", "error"]) {
      const a = g.cell_data[`mass_concentration_${k}`][c], b = csv.columns[`mass_concentration_${k}`][i];
      assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `node ${node} ${k}: ${a} vs ${b}`);
    }
  });
});

Deno.test("prismCells: wedges, hexahedra and polyhedra that VTK measures as their prisms; vertex cells for points", async () => {
  await using t = await tempDir();
  const tri = await readMf6Grid(`${MF6}/tri_model.disv.grb`);
  const o = tri.outline!;
  const polygon = (k: number, r: number) =>
    Array.from(
      { length: k },
      (_, i) => [r * Math.cos(-2 * Math.PI * i / k), r * Math.sin(-2 * Math.PI * i / k)],
    ); // clockwise
  const outlines = [
    ...Array.from({ length: 200 }, (_, c) => {
      const vs = Array.from(o.vert.subarray(o.vstart[c], o.vstart[c + 1]));
      return { vx: vs.map((v) => o.vx[v]), vy: vs.map((v) => o.vy[v]) };
    }),
    ...[4, 5, 6, 8].map((k) => ({ vx: polygon(k, 2).map((p) => p[0]), vy: polygon(k, 2).map((p) => p[1]) })),
  ];
  const top = outlines.map((_, i) => (i < 200 ? tri.top[i] : 3)),
    bot = outlines.map((_, i) => (i < 200 ? tri.bot[i] : 1));
  const { points, cells } = prismCells(outlines, top, bot);
  await Deno.writeTextFile(`${t.dir}/p.vtu`, encodeVtu(points, cells, {}));
  await Deno.writeTextFile(
    `${t.dir}/v.vtu`,
    encodeVtu(new Float64Array([0, 0, 0, 1, 2, 3]), vertexCells(2), {
      points: [{ name: "h", values: new Float32Array([1, 2]) }],
    }),
  );
  const v = await vtkRead([`${t.dir}/p.vtu`, `${t.dir}/v.vtu`]);
  if (!v) return vtkMissing();
  const p = v[`${t.dir}/p.vtu`] as { types: number[]; volumes: number[] };
  assert.deepEqual(p.types, [VTK.HEXAHEDRON, VTK.WEDGE, VTK.POLYHEDRON]);
  outlines.forEach((ol, i) => {
    let a = 0;
    for (let k = 0; k < ol.vx.length; k++) {
      const w = (k + 1) % ol.vx.length;
      a += ol.vx[k] * ol.vy[w] - ol.vx[w] * ol.vy[k];
    }
    const want = (Math.abs(a) / 2) * (top[i] - bot[i]);
    assert.ok(
      Math.abs(p.volumes[i] - want) <= 1e-9 * Math.max(1, want),
      `cell ${i}: volume ${p.volumes[i]}, prism ${want}`,
    );
  });
  const pv = v[`${t.dir}/v.vtu`] as { types: number[]; point_data: Record<string, number[]> };
  assert.deepEqual(pv.types, [VTK.VERTEX]);
  assert.deepEqual(pv.point_data.h, [1, 2]);
});
