// The README's MODFLOW 6 commands as written, with nothing but their own flags, on models of 1, 3 (real MODFLOW 6
// output, heads only) and 5 layers and on a DISV grid (a real MODFLOW 6 grid file, heads made for it): prepare
// --mf6-dir settles the patch counts from the data, train --epochs 1 the target column, and predict --vtu writes a
// ParaView file for every step that has a prediction.
import assert from "node:assert/strict";
import { disItems, encodeGrb, Mf6OutputWriter, readMf6Grid } from "../lib/io/mf6.ts";
import { FIXTURES, runScript, tempDir } from "./_helpers.ts";

const MF6 = `${FIXTURES}mf6-binary`;
/** Saved steps of every model: the fewest that give the default windows (10 + 10) in both parts. */
const STEPS = 67;

/** The Henry generator's run as MODFLOW 6 files, `layers` layers (with concentrations), fresh water at first. */
async function henryModel(dir: string, layers: number, extra: string[] = []): Promise<void> {
  const r = await runScript("henry.ts", [
    ...["--out", dir, "--format", "mf6", "--nx", "12", "--ny", "2", "--nz", String(layers)],
    ...["--steps", String(STEPS), "--save-every", "1", "--initial-concentration", "0", "--quiet", ...extra],
  ]);
  assert.equal(r.code, 0, r.stderr);
}

/** A real 3-layer MODFLOW 6 model's grid file and the first saved steps of its heads (no concentrations). */
async function advgwModel(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(`${MF6}/advgw_tidal.dis.grb`, `${dir}/advgw_tidal.dis.grb`);
  const heads = await Deno.readFile(`${MF6}/AdvGW_tidal.hds`);
  const record = 52 + 150 * 8; // a layer of 150 cells in double precision
  await Deno.writeFile(`${dir}/advgw_tidal.hds`, heads.subarray(0, STEPS * 3 * record));
}

/** A real DISV grid file (4 layers of triangles, inactive cells) and heads written for it, layer by layer. */
async function disvModel(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.copyFile(`${MF6}/tri_model.disv.grb`, `${dir}/tri_model.disv.grb`);
  const g = await readMf6Grid(`${dir}/tri_model.disv.grb`);
  const w = await Mf6OutputWriter.create(`${dir}/tri_model.hds`, "HEAD");
  for (let k = 1; k <= STEPS; k++) {
    for (let l = 1; l <= g.nlay; l++) {
      const h = Float64Array.from({ length: g.ncpl }, (_, c) => {
        const n = (l - 1) * g.ncpl + c;
        return g.active[n] ? 5 + Math.sin(g.x[n] / 300 + 0.2 * k) - 0.1 * l : 1e30;
      });
      await w.record({ kstp: k, kper: 1, pertim: k, totim: k, ncol: g.ncpl, nrow: 1, ilay: l }, h);
    }
  }
  await w.close();
}

/** Each model: how to make it, its layers, the target the defaults choose, and what the log says about it. */
const MODELS: [string, (dir: string) => Promise<void>, { layers: number; target: string; why?: RegExp }][] = [
  // no salt enters in these steps: the concentration holds one value, the defaults train on heads (which the
  // inflow's variation in time moves)
  ["1 layer (DIS), its concentration 0 throughout", (d) => henryModel(d, 1, ["--inflow-amplitude", "0.3"]), {
    layers: 1,
    target: "head",
    why: /target column head: mass_concentration holds one value in every training step/,
  }],
  ["3 layers (DIS, real MODFLOW 6 output, heads only)", advgwModel, {
    layers: 3,
    target: "head",
    why: /target column head: the data holds no mass_concentration/,
  }],
  ["5 layers (DIS)", (d) => henryModel(d, 5, ["--sea-boundary", "fixed"]), {
    layers: 5,
    target: "mass_concentration",
  }],
  ["DISV (4 layers, heads only)", disvModel, {
    layers: 4,
    target: "head",
    why: /target column head: the data holds no mass_concentration/,
  }],
];

for (const [name, make, m] of MODELS) {
  Deno.test(`the README's MODFLOW 6 commands with their own flags only: ${name}`, async () => {
    await using t = await tempDir();
    const model = `${t.dir}/model`, data = `${t.dir}/data`;
    await make(model);
    // deno task prepare --base-data-dir DIR --mf6-dir MODEL_FOLDER
    let r = await runScript("prepare.ts", ["--base-data-dir", data, "--mf6-dir", model]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`--slice-split ${Math.min(4, m.layers)}\\b`), "the patch counts said");
    const meta = JSON.parse(await Deno.readTextFile(`${data}/filter_patch/patches.json`));
    assert.equal(meta.times.length, STEPS);
    // deno task train --base-data-dir DIR --epochs 1
    r = await runScript("train.ts", [
      "--base-data-dir",
      data,
      "--epochs",
      "1",
      "--results-dir",
      `${t.dir}/runs`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const run = `${t.dir}/runs/${(await Array.fromAsync(Deno.readDir(`${t.dir}/runs`)))[0].name}`;
    const log = await Deno.readTextFile(`${run}/train.log`);
    const target = m.target;
    if (m.why) assert.match(log, m.why);
    const h = JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`));
    assert.ok(h.train_losses.length === 1 && Number.isFinite(h.val_losses[0]), JSON.stringify(h.val_losses));
    // deno task predict RUN/checkpoints/best_checkpoint.safetensors --vtu
    const out = `${t.dir}/pred`;
    r = await runScript("predict.ts", [
      `${run}/checkpoints/best_checkpoint.safetensors`,
      "--vtu",
      "--no-figures",
      "--out",
      out,
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.deepEqual(report.target_cols, [target]);
    // every validation step after the first input window has a prediction, and its own .vtu
    const valStart = Math.floor(STEPS * (1 - 0.3));
    assert.equal(report.vtu_files, STEPS - valStart - 10);
    const pvd = await Deno.readTextFile(`${out}/prediction.pvd`);
    const times = [...pvd.matchAll(/timestep="([^"]+)"/g)].map((x) => Number(x[1]));
    assert.deepEqual(times, meta.times.slice(valStart + 10));
  });
}

Deno.test("a model whose saved steps do not change (a steady state saved many times) is refused saying why", async () => {
  await using t = await tempDir();
  await henryModel(`${t.dir}/model`, 1); // fresh water, steady inflow: the heads are the same at every step
  let r = await runScript("prepare.ts", ["--base-data-dir", `${t.dir}/data`, "--mf6-dir", `${t.dir}/model`]);
  assert.equal(r.code, 0, r.stderr);
  r = await runScript("train.ts", ["--base-data-dir", `${t.dir}/data`, "--results-dir", `${t.dir}/runs`]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /mass_concentration holds one value in every training step \(0\); head does not change from one training step to the next at any point \(a steady state: persistence is exact\); pressure does not change .*: no column has anything to forecast/,
  );
  assert.ok(!(await Deno.stat(`${t.dir}/runs`).then(() => true, () => false)), "no run folder");
});

Deno.test("a model of one cell prepares, and train refuses it in one line saying why (not a model far worse than persistence)", async () => {
  await using t = await tempDir();
  const model = `${t.dir}/one`;
  await Deno.mkdir(model);
  const one = { nlay: 1, nrow: 1, ncol: 1, delr: [10], delc: [10] };
  await Deno.writeFile(`${model}/one.dis.grb`, encodeGrb("DIS", disItems(one, [0], [-10])));
  const w = await Mf6OutputWriter.create(`${model}/one.hds`, "HEAD");
  for (let k = 1; k <= STEPS; k++) {
    await w.record({ kstp: k, kper: 1, pertim: k, totim: k, ncol: 1, nrow: 1, ilay: 1 }, [
      1 + Math.sin(k / 5),
    ]);
  }
  await w.close();
  let r = await runScript("prepare.ts", ["--base-data-dir", `${t.dir}/data`, "--mf6-dir", model]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /--slice-split 1 \(the data has 1 distinct slice\(s\)\), --n-patches 1/);
  r = await runScript("train.ts", [
    "--base-data-dir",
    `${t.dir}/data`,
    "--epochs",
    "1",
    "--results-dir",
    `${t.dir}/runs`,
  ]);
  assert.equal(r.code, 2, r.stderr);
  const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("target column"));
  assert.match(
    lines[lines.length - 1],
    /holds 1 point\(s\): a neural operator learns how the fields vary in space/,
  );
  assert.ok(!(await Deno.stat(`${t.dir}/runs`).then(() => true, () => false)), "no run folder");
});
