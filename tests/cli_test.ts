import assert from "node:assert/strict";
import { FIXTURES, runScript, tempDir, writeRawFolder } from "./_helpers.ts";
import { FlagError, parseFlags } from "../lib/cli/flags.ts";
import { specsOf } from "../lib/train/settings.ts";

const DATA_FLAGS = specsOf("data");

Deno.test("train --dry-run --json reports the counts of a Python-made patch folder", async () => {
  const r = await runScript("train.ts", [
    "--dry-run",
    "--json",
    "--base-data-dir",
    `${FIXTURES}py_patches`,
    "--input-window-size",
    "5",
    "--output-window-size",
    "4",
    "--batch-size",
    "4",
    "--target-cols",
    "head,pressure",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.patches, 3);
  assert.equal(s.train_samples, 39);
  assert.equal(s.val_samples, 3);
  assert.equal(s.train_batches, 12);
  assert.equal(s.val_batches, 3);
  assert.deepEqual(s.points_per_patch, { min: 30, mean: 109 / 3, max: 48, total: 109 });
  assert.equal(s.core_points.total, 96);
  assert.deepEqual(s.target_cols, ["head", "pressure"]);
  assert.equal(s.normalization.columns.length, 2);
});

Deno.test("prepare then train --dry-run works on a raw CSV folder: windows fit the series, or a clear refusal", async () => {
  await using tmp = await tempDir();
  await writeRawFolder(`${tmp.dir}/all`, { nx: 8, ny: 2, nz: 4, steps: 30 });
  const p = await runScript("prepare.ts", ["--base-data-dir", tmp.dir, "--n-patches", "4", "--quiet"]);
  assert.equal(p.code, 0, p.stderr);
  const dry = (args: string[]) =>
    runScript("train.ts", ["--dry-run", "--json", "--base-data-dir", tmp.dir, "--batch-size", "5", ...args]);
  const r = await dry([]);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout);
  assert.equal(s.patches, 4);
  assert.equal(s.core_points.total, 64);
  // 30 steps are too few for 10 + 10 with 30% held out: 6 + 6, the last 12 steps for validation
  assert.match(
    r.stderr,
    /windows: --input-window-size 6 --output-window-size 6 --val-ratio 0\.38\d* \(the series have 30 steps/,
  );
  assert.equal(s.input_window_size, 6);
  assert.equal(s.train_samples, 4 * 7); // 18 training steps, windows of 12
  assert.equal(s.val_samples, 4 * 1); // 12 validation steps
  // the reference's windows do not fit: refused, naming the steps there are and the steps they need
  const ref = await dry(["--input-window-size", "10", "--output-window-size", "10", "--val-ratio", "0.3"]);
  assert.equal(ref.code, 2);
  assert.match(ref.stderr, /no validation windows in .*: the series have 30 saved steps .*need at least 64/);
});

Deno.test("unknown flags and bad values are errors that name the flag", async () => {
  const r = await runScript("train.ts", ["--dry-run", "--epochz", "3"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown flag --epochz/);
  assert.throws(
    () => parseFlags(["--batch-size", "x"], DATA_FLAGS),
    (e: Error) => e instanceof FlagError && /--batch-size: expected an integer/.test(e.message),
  );
  assert.throws(() => parseFlags(["--val-ratio", "1.5"], DATA_FLAGS), /--val-ratio: must be between 0 and 1/);
  assert.throws(() => parseFlags(["--target-col", "salt"], DATA_FLAGS), /--target-cols: unknown column/);
  assert.throws(() => parseFlags(["--input-window-size"], DATA_FLAGS), /--input-window-size needs a value/);
  const f = parseFlags(["--target-col", "head", "--no-shuffle-patches", "--batch-size=7"], DATA_FLAGS);
  assert.deepEqual(f["target-cols"], ["head"]);
  assert.equal(f["shuffle-patches"], false);
  assert.equal(f["batch-size"], 7);
});
