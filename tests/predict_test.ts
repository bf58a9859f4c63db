import assert from "node:assert/strict";
import { runTrain, tempDir, tinyPatchData } from "./_helpers.ts";
import { forecast, predict } from "../lib/tools/predict.ts";
import { loadCheckpoint, restoreTensors } from "../lib/train/checkpoint.ts";
import { loadPatchDataset } from "../lib/data/dataset.ts";
import { createGino } from "../lib/model/gino.ts";
import { latentGrid } from "../lib/model/latent.ts";
import { initBackend, tf } from "../lib/model/backend.ts";
import { readNumericCsv } from "../lib/io/csv.ts";

let trained: Promise<string> | undefined;
/** A checkpoint of a tiny model trained for 2 epochs (once per test file). */
function checkpoint(): Promise<string> {
  trained ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "gino-gw-predict-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const r = await runTrain(["--epochs", "2", "--no-residual", "--results-dir", dir, "--run-name", "p"]);
    assert.equal(r.code, 0, r.stderr);
    return `${dir}/p/checkpoints/final_checkpoint.safetensors`;
  })();
  return trained;
}

async function setup() {
  const path = await checkpoint();
  await initBackend("wasm");
  const ck = await loadCheckpoint(path);
  const s = ck.state.config;
  const ds = await loadPatchDataset(`${await tinyPatchData()}/filter_patch`, {
    targetCols: s.data.targetCols,
    inputWindow: 3,
    outputWindow: 2,
    normalization: ck.state.normalization,
  });
  const model = createGino(ck.state.gino_config as unknown as Record<string, unknown>);
  restoreTensors(ck, model);
  return { path, ck, ds, model };
}

Deno.test("predict() metrics equal a direct computation over the same windows, for the model and both baselines", async () => {
  const { path, ck, ds, model } = await setup();
  await using t = await tempDir();
  const r = await predict({ checkpoint: path, outDir: t.dir, backend: "wasm", csv: false, figures: false });
  const { mean, std } = ck.state.normalization;
  let se = 0, ae = 0, mx = 0, n = 0, pse = 0, lse = 0, windows = 0, ty = 0, tyy = 0;
  for (const p of ds.patches) {
    const geom = model.geometry(p.coords, latentGrid(p.coords, [8, 8, 8]), [8, 8, 8]);
    for (let t0 = p.trainSteps; t0 + 5 <= p.steps; t0++) {
      windows++;
      const x = new Float32Array(p.n * 3);
      for (let j = 0; j < p.n; j++) for (let i = 0; i < 3; i++) x[j * 3 + i] = p.values[j * p.steps + t0 + i];
      const out = tf.tidy(() => model.forwardGeometry(geom, tf.tensor3d(x, [1, p.n, 3])).dataSync());
      for (let j = 0; j < p.nCore; j++) {
        const last = p.values[j * p.steps + t0 + 2], prev = p.values[j * p.steps + t0 + 1];
        for (let h = 0; h < 2; h++) {
          const truth = p.values[j * p.steps + t0 + 3 + h] * std[0] + mean[0];
          const e = out[j * 2 + h] * std[0] + mean[0] - truth;
          se += e * e;
          ae += Math.abs(e);
          ty += truth;
          tyy += truth * truth;
          mx = Math.max(mx, Math.abs(e));
          n++;
          pse += (last * std[0] + mean[0] - truth) ** 2;
          lse += ((last + (h + 1) * (last - prev)) * std[0] + mean[0] - truth) ** 2;
        }
      }
    }
    geom.dispose();
  }
  const m = r.model.overall.mass_concentration;
  assert.equal(r.windows, windows);
  assert.equal(m.count, n);
  const close = (a: number, b: number) =>
    assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(b) + 1e-9, `${a} vs ${b}`);
  close(m.rmse, Math.sqrt(se / n));
  close(m.mae, ae / n);
  close(m.max_error, mx);
  close(m.r2, 1 - se / (tyy - ty * ty / n));
  assert.equal(r.fitted_base, undefined, "a plain model has no fitted base to report");
  close(r.persistence.overall.mass_concentration.rmse, Math.sqrt(pse / n));
  close(r.linear.overall.mass_concentration.rmse, Math.sqrt(lse / n));
  assert.equal(r.model.per_step.mass_concentration.length, 2);
  model.dispose();
});

Deno.test("forecast() with rollout 1 is the single-window prediction, and rollout 2 starts with it", async () => {
  const { ds, model } = await setup();
  const p = ds.patches[0];
  const geom = model.geometry(p.coords, latentGrid(p.coords, [8, 8, 8]), [8, 8, 8]);
  const starts = [0, 3, 7];
  const one = await forecast(model, geom, p, starts, 1, 3, 2, 1);
  const two = await forecast(model, geom, p, starts, 1, 3, 2, 2);
  const x = new Float32Array(3 * p.n * 3);
  starts.forEach((t0, b) => {
    for (let j = 0; j < p.n; j++) {
      for (let i = 0; i < 3; i++) x[(b * p.n + j) * 3 + i] = p.values[j * p.steps + t0 + i];
    }
  });
  const direct = tf.tidy(() => model.forwardGeometry(geom, tf.tensor3d(x, [3, p.n, 3])).dataSync());
  for (let b = 0; b < 3; b++) {
    for (let j = 0; j < p.n; j++) {
      for (let h = 0; h < 2; h++) {
        assert.equal(one[(b * p.n + j) * 2 + h], direct[(b * p.n + j) * 2 + h]);
        assert.equal(two[(b * p.n + j) * 4 + h], one[(b * p.n + j) * 2 + h]);
      }
    }
  }
  geom.dispose();
  model.dispose();
});

Deno.test("deno task predict writes metrics, figures and CSVs that map every node once with its true value", async () => {
  const path = await checkpoint();
  await using t = await tempDir();
  const data = await tinyPatchData();
  const root = new URL("../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${root}predict.ts`,
      "--checkpoint",
      path,
      "--out",
      t.dir,
      "--backend",
      "wasm",
      "--rollout",
      "2",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const table = new TextDecoder().decode(out.stdout);
  assert.match(table, /mass_concentration\s+rmse\s+\S+\s+\S+\s+\S+/);
  const metrics = JSON.parse(await Deno.readTextFile(`${t.dir}/metrics.json`));
  assert.equal(metrics.horizon, 4);
  assert.equal(metrics.model.per_step.mass_concentration.length, 4);
  for (const f of metrics.figures) assert.ok((await Deno.stat(f)).size > 1000, f);
  assert.ok(
    metrics.figures.some((f: string) => /section_mass_concentration_step\d+\.png$/.test(f)),
    "cross-section map on Henry data",
  );
  const files = [...Deno.readDirSync(`${t.dir}/predictions`)].map((e) => e.name).sort();
  assert.ok(files.length > 0);
  const rawFiles = [...Deno.readDirSync(`${data}/all`)].map((e) => e.name).sort();
  for (const f of files) {
    const csv = await readNumericCsv(`${t.dir}/predictions/${f}`, [
      "node",
      "X",
      "mass_concentration_true",
      "mass_concentration_pred",
      "mass_concentration_error",
    ]);
    const nodes = Array.from(csv.columns.node);
    assert.equal(new Set(nodes).size, nodes.length, `${f}: a node is written twice`);
    assert.equal(nodes.length, 12 * 6 * 2, `${f}: every node once`);
    const raw = await readNumericCsv(`${data}/all/${rawFiles[Number(f.slice(0, 4))]}`, [
      "node",
      "X",
      "mass_concentration",
    ]);
    for (let i = 0; i < csv.rows; i++) {
      const k = csv.columns.node[i] - 1;
      assert.equal(raw.columns.node[k], csv.columns.node[i]);
      assert.ok(
        Math.abs(csv.columns.X[i] - raw.columns.X[k]) < 1e-6,
        `${f} node ${k + 1}: X ${csv.columns.X[i]} vs ${raw.columns.X[k]}`,
      );
      assert.ok(
        Math.abs(csv.columns.mass_concentration_true[i] - raw.columns.mass_concentration[k]) < 1e-4 * 35,
        `${f} node ${k + 1}`,
      );
      const err = csv.columns.mass_concentration_pred[i] - csv.columns.mass_concentration_true[i];
      assert.ok(Math.abs(err - csv.columns.mass_concentration_error[i]) < 1e-5 * 35);
    }
  }
});

Deno.test("predict() reports a fitted-base model's base alone, equal to a direct computation from the saved weights", async () => {
  await using t = await tempDir();
  const tr = await runTrain([
    "--epochs",
    "1",
    "--residual",
    "--residual-base",
    "fitted",
    "--results-dir",
    t.dir,
    "--run-name",
    "f",
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  const path = `${t.dir}/f/checkpoints/final_checkpoint.safetensors`;
  const ck = await loadCheckpoint(path);
  const w = ck.state.residual_fit!;
  const r = await predict({
    checkpoint: path,
    outDir: `${t.dir}/out`,
    backend: "wasm",
    csv: false,
    figures: false,
  });
  const ds = await loadPatchDataset(`${await tinyPatchData()}/filter_patch`, {
    targetCols: ck.state.config.data.targetCols,
    inputWindow: 3,
    outputWindow: 2,
    normalization: ck.state.normalization,
  });
  const { std } = ck.state.normalization;
  let se = 0, n = 0;
  for (const p of ds.patches) {
    for (let t0 = p.trainSteps; t0 + 5 <= p.steps; t0++) {
      for (let j = 0; j < p.nCore; j++) {
        const x = [0, 1, 2].map((i) => p.values[j * p.steps + t0 + i]);
        for (let h = 0; h < 2; h++) {
          const v = w[3 * 2 + h] + x.reduce((a, xi, i) => a + w[i * 2 + h] * xi, 0);
          se += ((v - p.values[j * p.steps + t0 + 3 + h]) * std[0]) ** 2;
          n++;
        }
      }
    }
  }
  const got = r.fitted_base!.overall.mass_concentration.rmse;
  assert.ok(Math.abs(got - Math.sqrt(se / n)) <= 1e-5 * got, `${got} vs ${Math.sqrt(se / n)}`);
});
