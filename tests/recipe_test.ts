// What a new run chooses from its data when no flag says otherwise: windows from the series' length, a model from
// the patches, batch and epochs; the refusals of series too short to train on; --reference.
import assert from "node:assert/strict";
import { chooseWindows } from "../lib/data/windows.ts";
import { modelFor } from "../lib/train/recipe.ts";
import { countWindows } from "../lib/data/dataset.ts";
import { runScript, runTrain, tempDir, writeRawFolder } from "./_helpers.ts";

Deno.test("chooseWindows() keeps 10 + 10 with 30% held out where the series allows, shorter windows where not", () => {
  assert.deepEqual(chooseWindows(151).windows, { input: 10, output: 10, valSteps: 46 });
  assert.deepEqual(chooseWindows(67).windows, { input: 10, output: 10, valSteps: 21 });
  for (const steps of [4, 5, 7, 12, 20, 30, 50, 66, 67, 100, 1000]) {
    const { input: w, output, valSteps } = chooseWindows(steps).windows;
    assert.equal(w, output);
    const train = countWindows(steps - valSteps, 2 * w), val = countWindows(valSteps, 2 * w);
    assert.ok(
      train >= 1 && val >= 1,
      `${steps} steps: ${w} + ${w}, ${train} training, ${val} validation windows`,
    );
    assert.ok(valSteps >= Math.ceil(0.3 * steps), `${steps} steps: at least 30% held out`);
    // the longest windows that leave 4 training windows (where any do)
    if (steps >= 11) assert.ok(train >= 4, `${steps} steps: ${train} training windows`);
    if (w < 10 && steps >= 11) {
      const longer = w + 1, vs = Math.max(2 * longer, Math.ceil(0.3 * steps));
      assert.ok(countWindows(steps - vs, 2 * longer) < 4, `${steps} steps: ${longer} would fit too`);
    }
  }
  assert.throws(() => chooseWindows(3), /3 saved time steps: too few .* needs 4/);
  assert.throws(() => chooseWindows(2), /2 saved time step\(s\): a steady state/);
  assert.throws(() => chooseWindows(1), /a steady state \(or a single snapshot\) holds no evolution/);
});

Deno.test("modelFor() sizes the latent grid to the points and the radius to their spacing", () => {
  assert.deepEqual(modelFor({ points: 300, spacing: 0.108 }), { grid: 8, modes: 8, width: 32, radius: 0.25 });
  assert.equal(modelFor({ points: 4000, spacing: 0.05 }).grid, 16);
  assert.equal(modelFor({ points: 1500, spacing: 0.05 }).grid, 12);
  assert.equal(modelFor({ points: 20, spacing: 0.5 }).grid, 8, "at least 8 (the FNO's modes)");
  assert.equal(modelFor({ points: 300, spacing: 0.01 }).radius, 0.05, "a radius of at least 0.05");
});

/** A raw folder of `steps` saved steps prepared into 2 patches. */
async function shortData(dir: string, steps: number): Promise<{ code: number; stderr: string }> {
  await writeRawFolder(`${dir}/all`, { nx: 8, ny: 2, nz: 4, steps });
  return await runScript("prepare.ts", [
    "--base-data-dir",
    dir,
    "--n-patches",
    "2",
    "--slice-split",
    "2",
    "--quiet",
  ]);
}

Deno.test("series too short to train on: prepare warns with the numbers; train and --dry-run refuse them (exit 2)", async () => {
  await using t = await tempDir();
  const p = await shortData(t.dir, 3);
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stderr, /warning: the series have 3 saved time steps: too few .*training will refuse them/);
  for (const dry of [[], ["--dry-run"]]) {
    const r = await runScript("train.ts", ["--base-data-dir", t.dir, "--results-dir", `${t.dir}/r`, ...dry]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^error: the series have 3 saved time steps: too few for one training and one validation/m,
    );
  }
  // a steady state: said why
  await using s = await tempDir();
  await shortData(s.dir, 1);
  const r = await runScript("train.ts", ["--base-data-dir", s.dir, "--results-dir", `${s.dir}/r`]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /1 saved time step\(s\): a steady state .* holds no evolution in time to learn/);
  assert.ok(!(await Deno.stat(`${t.dir}/r`).then(() => true, () => false)), "no results folder");
});

Deno.test("a short series trains with no flags: the log says which windows, model, batch and epochs and why", async () => {
  await using t = await tempDir();
  assert.equal((await shortData(t.dir, 20)).code, 0);
  const r = await runScript("train.ts", [
    "--base-data-dir",
    t.dir,
    "--results-dir",
    t.dir + "/r",
    "--run-name",
    "s",
    "--epochs",
    "2",
    "--backend",
    "wasm",
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /windows: --input-window-size 4 --output-window-size 4 --val-ratio 0\.375 \(the series have 20 steps/,
  );
  assert.match(
    r.stdout,
    /model: --gno-radius [\d.]+ --latent-grid 8 .*--residual --residual-base fitted \(patches of/,
  );
  assert.match(r.stdout, /training: --batch-size 4 \(\d+ batches per epoch/);
  const cfg = JSON.parse(await Deno.readTextFile(`${t.dir}/r/s/config.json`)).settings;
  assert.equal(cfg.data.inputWindow, 4);
  assert.equal(cfg.optim.epochs, 2, "--epochs given: not chosen");
  assert.equal(cfg.optim.lrSchedule, "cosine");
});

Deno.test("--reference takes the reference script's settings for every setting not given, exponential schedule included", async () => {
  await using t = await tempDir();
  // the tiny data's 25 steps are too short for the reference's 10 + 10 windows: refused, pointing at the cause
  const short = await runTrain(["--reference", "--input-window-size", "10", "--results-dir", t.dir]);
  assert.equal(short.code, 2);
  assert.match(short.stderr, /no (training|validation) windows .*or leave out --reference/);
  const r = await runTrain(["--reference", "--epochs", "1", "--results-dir", t.dir, "--run-name", "ref"]);
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(await Deno.readTextFile(`${t.dir}/ref/config.json`)).settings;
  assert.equal(cfg.optim.lrSchedule, "exponential");
  assert.equal(cfg.model.residual, false, "the reference's plain output");
  assert.equal(cfg.data.batchSize, 4, "a flag given wins (the tiny model's batch)");
  const log = await Deno.readTextFile(`${t.dir}/ref/train.log`);
  assert.match(log, /--reference: the reference training script's model and output/);
  assert.match(log, /learning rate: exponential: lr 0\.001/);
});
