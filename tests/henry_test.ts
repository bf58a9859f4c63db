import assert from "node:assert/strict";
import { HENRY_DEMO, isochlorPositions, simulateHenry } from "../lib/sim/henry.ts";
import type { HenryOptions } from "../lib/sim/henry.ts";
import { readNumericCsv } from "../lib/io/csv.ts";
import { loadPatchDataset } from "../lib/data/dataset.ts";
import { ensureDemoData } from "../lib/data/demo.ts";
import { FIXTURES, runScript, tempDir } from "./_helpers.ts";

const MF6 = `${FIXTURES}henry-mf6-A/`;

async function mf6Step(step: number): Promise<{ c: Float64Array; h: Float64Array }> {
  const name = [...Deno.readDirSync(MF6)].map((e) => e.name).find((n) =>
    n.startsWith(`step${String(step).padStart(4, "0")}_`)
  )!;
  const csv = await readNumericCsv(`${MF6}${name}`, ["layer", "col", "concentration", "head"]);
  const c = new Float64Array(200), h = new Float64Array(200);
  for (let i = 0; i < csv.rows; i++) {
    const k = (csv.columns.layer[i] - 1) * 20 + csv.columns.col[i] - 1;
    c[k] = csv.columns.concentration[i];
    h[k] = csv.columns.head[i];
  }
  return { c, h };
}

Deno.test("deno task henry reproduces the MODFLOW 6 autotest (concentration 1e-4, head 1e-6, isochlors 1 mm)", async () => {
  await using tmp = await tempDir();
  const r = await runScript("henry.ts", [
    "--out",
    tmp.dir,
    "--nx",
    "20",
    "--nz",
    "10",
    "--steps",
    "500",
    "--save-every",
    "50",
    "--quiet",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const files = [...Deno.readDirSync(`${tmp.dir}/all`)].map((e) => e.name).sort();
  assert.equal(files.length, 11);
  assert.equal(files[0], "0000.csv");
  assert.equal(files[10], "0500.csv");
  const iso =
    (await readNumericCsv(`${MF6}isochlors_bottom_row.csv`, ["step", "x_0.25", "x_0.50", "x_0.75"])).columns;
  let worstC = 0, worstH = 0;
  for (let s = 50; s <= 500; s += 50) {
    const ours = await readNumericCsv(`${tmp.dir}/all/${String(s).padStart(4, "0")}.csv`, [
      "node",
      "slice",
      "X",
      "Z",
      "mass_concentration",
      "head",
      "pressure",
    ]);
    const ref = await mf6Step(s);
    const c = ours.columns.mass_concentration, h = ours.columns.head;
    for (let i = 0; i < 200; i++) {
      worstC = Math.max(worstC, Math.abs(c[i] - ref.c[i]));
      worstH = Math.max(worstH, Math.abs(h[i] - ref.h[i]));
      const p = (1000 + 0.7 * c[i]) * 9.81 * (h[i] - ours.columns.Z[i]);
      assert.ok(Math.abs(ours.columns.pressure[i] - p) <= 1e-9 * Math.abs(p) + 1e-9);
    }
    assert.equal(ours.columns.node[37], 38);
    assert.equal(ours.columns.slice[37], 2); // node 38 = layer 2, column 18
    assert.equal(ours.columns.X[37], 1.75);
    const row = iso.step.indexOf(s);
    const mine = isochlorPositions(c);
    for (const [k, key] of [[0, "x_0.25"], [1, "x_0.50"], [2, "x_0.75"]] as const) {
      assert.ok(
        Math.abs(mine[k] - iso[key][row]) < 1e-3,
        `step ${s} isochlor ${key}: ${mine[k]} vs ${iso[key][row]}`,
      );
    }
  }
  assert.ok(worstC <= 1e-4, `concentration error ${worstC}`);
  assert.ok(worstH <= 1e-6, `head error ${worstH}`);
  const info = JSON.parse(await Deno.readTextFile(`${tmp.dir}/henry.json`));
  assert.deepEqual(info.saved_steps, [0, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500]);
  assert.equal(info.parameters.k, 864);
  assert.ok(info.stats.maxMassBalanceError < 1e-8);
});

Deno.test("a y-extruded slab with no along-y variation equals the 2D section to solver precision", () => {
  const base: Partial<HenryOptions> = {
    nx: 12,
    nz: 6,
    steps: 40,
    saveEvery: 40,
    initialConcentration: 0,
    seaBoundary: "fixed",
  };
  const flat = [...simulateHenry(base)].map((s) => ({ c: s.concentration.slice(), h: s.head.slice() })).at(
    -1,
  )!;
  const slab = [...simulateHenry({ ...base, ny: 3 })].map((s) => ({
    c: s.concentration.slice(),
    h: s.head.slice(),
  })).at(-1)!;
  let err = 0;
  for (let l = 0; l < 6; l++) {
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 12; c++) {
        const i2 = l * 12 + c, i3 = (l * 3 + r) * 12 + c;
        err = Math.max(err, Math.abs(flat.c[i2] - slab.c[i3]), Math.abs(flat.h[i2] - slab.h[i3]));
      }
    }
  }
  assert.ok(err < 1e-9, `slab vs 2D: ${err}`);
  assert.ok(flat.c.some((v) => v > 1), "sea water entered");
});

Deno.test("the fixed sea boundary starts as MODFLOW 6 does: step 1's flow sees the initial concentration there", () => {
  // MODFLOW 6 solves a step's flow before its transport, and CNC sets its cells when transport advances: the
  // first step's flow sees the initial concentration in the sea column, so its heads are those of fresh water
  const run = (seaBoundary: "fixed" | "chd") =>
    Array.from(
      simulateHenry({ nx: 12, nz: 6, steps: 2, initialConcentration: 0, seaBoundary }),
      (s) => ({ c: s.concentration.slice(), h: s.head.slice() }), // the yielded arrays are reused
    );
  const fixed = run("fixed"), fresh = run("chd");
  const sea = (l: number) => l * 12 + 11;
  for (let l = 0; l < 6; l++) {
    assert.equal(fixed[0].c[sea(l)], 0, "step 0 is the initial state everywhere");
    assert.equal(fixed[1].c[sea(l)], 35, "the sea column holds 35 from step 1");
  }
  for (let i = 0; i < 72; i++) {
    assert.ok(Math.abs(fixed[1].h[i] - fresh[1].h[i]) < 1e-12, `head of cell ${i} at step 1`);
  }
  // from step 2 the flow sees the salt sea column (denser water at the boundary changes the heads inland)
  assert.ok(Math.abs(fixed[2].h[sea(5) - 11] - fresh[2].h[sea(5) - 11]) > 1e-4);
});

Deno.test("the fixed sea boundary holds the sea column at sea concentration and conserves salt every step", () => {
  const opts: Partial<HenryOptions> = {
    nx: 10,
    nz: 5,
    ny: 2,
    steps: 30,
    initialConcentration: 0,
    seaBoundary: "fixed",
    inflowVariation: 0.3,
  };
  let last: Float64Array | undefined;
  for (const s of simulateHenry(opts)) {
    for (let l = 0; l < 5; l++) {
      for (let r = 0; r < 2; r++) assert.equal(s.concentration[(l * 2 + r) * 10 + 9], s.step === 0 ? 0 : 35);
    }
    assert.ok(s.massBalanceError < 1e-8, `mass balance ${s.massBalanceError}`);
    last = s.concentration.slice();
  }
  // the along-y variation makes the two rows differ
  assert.notEqual(last![9 * 0 + 8], last![10 + 8]);
});

Deno.test("deno task henry refuses bad parameters and a non-empty output folder, naming the flag, writing nothing", async () => {
  await using tmp = await tempDir();
  const cases: [string[], RegExp][] = [
    [["--nx", "0"], /--nx must be a positive integer/],
    [["--steps", "-3"], /--steps must be a positive integer/],
    [["--porosity", "1.5"], /--porosity must be in \(0, 1\]/],
    [["--sea-boundary", "open"], /--sea-boundary must be chd or fixed/],
    [["--length", "0"], /--length must be positive/],
  ];
  for (const [args, msg] of cases) {
    const r = await runScript("henry.ts", ["--out", `${tmp.dir}/x`, ...args]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, msg);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.dir)], []);
  await Deno.mkdir(`${tmp.dir}/full`);
  await Deno.writeTextFile(`${tmp.dir}/full/keep.txt`, "mine");
  const r = await runScript("henry.ts", ["--out", `${tmp.dir}/full`, "--steps", "2"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /exists and is not empty; pass --force/);
  assert.equal(await Deno.readTextFile(`${tmp.dir}/full/keep.txt`), "mine");
});

Deno.test("the demo data set is generated and prepared on first use, and loads as a patch dataset", async () => {
  await using tmp = await tempDir();
  const dir = await ensureDemoData(`${tmp.dir}/henry`, () => {});
  const ds = await loadPatchDataset(`${dir}/filter_patch`, {
    targetCols: ["mass_concentration"],
    inputWindow: 10,
    outputWindow: 10,
  });
  assert.equal(ds.patches.reduce((s, p) => s + p.nCore, 0), HENRY_DEMO.nx! * HENRY_DEMO.ny! * HENRY_DEMO.nz!);
  assert.ok(ds.windowCounts("val").every((c) => c > 0));
  const before = (await Deno.stat(`${dir}/henry.json`)).mtime;
  await ensureDemoData(dir, () => {});
  assert.deepEqual((await Deno.stat(`${dir}/henry.json`)).mtime, before);
});

Deno.test("inflow varying in time moves the wedge back and forth and keeps the salt balance", () => {
  const base: Partial<HenryOptions> = {
    nx: 16,
    nz: 8,
    steps: 200,
    saveEvery: 10,
    initialConcentration: 0,
    seaBoundary: "fixed",
  };
  const toes: number[] = [];
  for (const s of simulateHenry({ ...base, inflowAmplitude: 0.5, inflowPeriod: 0.1 })) {
    assert.ok(s.massBalanceError < 1e-8, `mass balance ${s.massBalanceError} at step ${s.step}`);
    if (s.step >= 100) toes.push(isochlorPositions(s.concentration, base, [0.5])[0]);
  }
  // after the intrusion the toe keeps moving: more than 5 cm between its extremes in the second half
  assert.ok(Math.max(...toes) - Math.min(...toes) > 0.05, `toe positions ${toes.map((v) => v.toFixed(3))}`);
});

Deno.test("the CSV files hold the simulated values to 12 digits, tiny ones too (exponents keep their zeros)", async () => {
  const { formatValue, writeHenry } = await import("../lib/sim/henry.ts");
  const { readNumericCsv } = await import("../lib/io/csv.ts");
  assert.equal(formatValue(1.36484831988e-10), "1.36484831988e-10");
  assert.equal(formatValue(2.5e20), "2.5e+20");
  assert.equal(formatValue(123), "123");
  assert.equal(formatValue(-0.5), "-0.5");
  assert.equal(formatValue(0), "0");
  const o: Partial<HenryOptions> = {
    nx: 12,
    nz: 6,
    steps: 10,
    initialConcentration: 0,
    seaBoundary: "fixed",
  };
  const dir = await Deno.makeTempDir();
  try {
    await writeHenry(o, { out: dir, force: true });
    let last;
    for (const s of simulateHenry(o)) last = { step: s.step, c: Float64Array.from(s.concentration) };
    const csv = await readNumericCsv(`${dir}/all/${String(last!.step).padStart(4, "0")}.csv`, [
      "mass_concentration",
    ]);
    const c = csv.columns.mass_concentration;
    let tiny = 0;
    for (let i = 0; i < c.length; i++) {
      if (last!.c[i] !== 0 && Math.abs(last!.c[i]) < 1e-9) tiny++;
      assert.ok(
        Math.abs(c[i] - last!.c[i]) <= 1e-11 * Math.abs(last!.c[i]),
        `node ${i + 1}: ${c[i]} vs ${last!.c[i]}`,
      );
    }
    assert.ok(tiny > 0, "the run has values below 1e-9 (the case that was written wrong)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("case D (fresh start, fixed sea boundary, 40 x 20): every saved step as MODFLOW 6 6.5.0 (1e-4 kg/m3, 1e-6 m, isochlors 1 mm)", async () => {
  // tests/fixtures/henry-mf6-D: MODFLOW 6's own output with its input files and README
  const D = `${FIXTURES}henry-mf6-D/`;
  await using tmp = await tempDir();
  const r = await runScript("henry.ts", [
    "--out",
    tmp.dir,
    "--nx",
    "40",
    "--nz",
    "20",
    "--steps",
    "200",
    "--save-every",
    "10",
    "--initial-concentration",
    "0",
    "--sea-boundary",
    "fixed",
    "--quiet",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const iso =
    (await readNumericCsv(`${D}isochlors_bottom_row.csv`, ["step", "x_0.25", "x_0.50", "x_0.75"])).columns;
  const o: Partial<HenryOptions> = { nx: 40, nz: 20 };
  for (let s = 10; s <= 200; s += 10) {
    const ref = await readNumericCsv(
      `${D}step${String(s).padStart(4, "0")}_t${(s * 0.001).toFixed(4)}.csv`,
      ["layer", "col", "concentration", "head"],
    );
    // what a user reads: the CSV files the command wrote
    const ours = await readNumericCsv(`${tmp.dir}/all/${String(s).padStart(4, "0")}.csv`, [
      "slice",
      "mass_concentration",
      "head",
    ]);
    assert.equal(ours.rows, 800);
    let dc = 0, dh = 0;
    for (let k = 0; k < ref.rows; k++) {
      const i = (ref.columns.layer[k] - 1) * 40 + ref.columns.col[k] - 1;
      assert.equal(ours.columns.slice[i], ref.columns.layer[k]);
      dc = Math.max(dc, Math.abs(ours.columns.mass_concentration[i] - ref.columns.concentration[k]));
      dh = Math.max(dh, Math.abs(ours.columns.head[i] - ref.columns.head[k]));
    }
    assert.ok(dc <= 1e-4, `step ${s}: concentration differs by ${dc}`);
    assert.ok(dh <= 1e-6, `step ${s}: head differs by ${dh}`);
    const row = iso.step.indexOf(s);
    const mine = isochlorPositions(ours.columns.mass_concentration, o); // the bottom row
    for (const [k, key] of [[0, "x_0.25"], [1, "x_0.50"], [2, "x_0.75"]] as const) {
      assert.ok(
        Math.abs(mine[k] - iso[key][row]) < 1e-3,
        `step ${s} isochlor ${key}: ${mine[k]} vs ${iso[key][row]}`,
      );
    }
  }
});
