import assert from "node:assert/strict";
import { describeAdapter, gpuAdapter, initBackend, tf } from "../lib/model/backend.ts";
import { createGino, relativeL2Loss } from "../lib/model/gino.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { golden, runScript, runTrain, tempDir } from "./_helpers.ts";

// Runs on any WebGPU adapter, Mesa's software one (llvmpipe) included: correctness, not speed.
const adapter = await gpuAdapter();
const ignore = adapter === undefined;
if (ignore) {
  console.error(
    "webgpu tests skipped: no WebGPU adapter (on Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 " +
      "libgl1-mesa-dri for Mesa's software adapter, or a GPU driver with Vulkan)",
  );
}

function worst(a: ArrayLike<number>, b: ArrayLike<number>) {
  assert.equal(a.length, b.length);
  let d = 0, m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return { d, m };
}
const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));

for (const name of ["gino-golden-small", "gino-golden-sparse"]) {
  Deno.test({
    name: `${name} on webgpu: same outputs, loss and gradients as the reference PyTorch GINO`,
    ignore,
    async fn() {
      const info = await initBackend("webgpu");
      assert.equal(info.backend, "webgpu");
      const { cfg, weights, inputs, outputs } = await golden(name);
      const model = createGino(cfg.gino_kwargs);
      model.loadTorchStateDict(weights);
      const P = inputs.point_coords, L = inputs.latent_queries;
      const geom = model.geometry(P.data as Float32Array, L.data as Float32Array, L.shape.slice(0, 3));
      const x = tf.tensor3d(inputs.x.data as Float32Array, inputs.x.shape as [number, number, number]);
      const y = tf.tensor3d(inputs.y.data as Float32Array, inputs.y.shape as [number, number, number]);
      const out = model.forwardGeometry(geom, x);
      const o = worst(await out.data(), outputs.out.data as Float32Array);
      assert.ok(o.d <= 1e-4 * o.m, `output differs by ${o.d} (max ${o.m})`);
      const { value, grads } = tf.variableGrads(
        () => relativeL2Loss(model.forwardGeometry(geom, x), y, cfg.core_len),
        model.variables,
      );
      const loss = (await value.data())[0], refLoss = (outputs.loss.data as Float32Array)[0];
      assert.ok(Math.abs(loss - refLoss) <= 1e-5 * refLoss, `loss ${loss} vs ${refLoss}`);
      const ours = await model.readGradientsToTorch(model.variables.map((v) => grads[v.name]));
      for (const [k, gv] of Object.entries(ours)) {
        const r = outputs[`grad.${k}`].data as Float32Array;
        const rel = norm(Array.from(gv, (v, i) => v - r[i])) / norm(r);
        assert.ok(rel <= 1e-3, `gradient of ${k}: relative difference ${rel}`);
      }
      tf.dispose([out, value, x, y, ...Object.values(grads)]);
      geom.dispose();
      model.dispose();
    },
  });
}

Deno.test({
  name: "webgpu: deno task train --backend webgpu trains, resumes exactly (bitwise), follows the wasm run, " +
    "predicts and names the adapter; auto never picks a software one",
  ignore,
  async fn() {
    await using t = await tempDir();
    const r = await runTrain([
      "--backend",
      "webgpu",
      "--epochs",
      "2",
      "--results-dir",
      t.dir,
      "--run-name",
      "g",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const log = await Deno.readTextFile(`${t.dir}/g/train.log`);
    assert.match(log, new RegExp(`backend: webgpu on ${adapter!.description.replace(/[()]/g, ".")}`));
    const h = JSON.parse(await Deno.readTextFile(`${t.dir}/g/loss_history.json`));
    assert.equal(h.train_losses.length, 2);
    assert.ok(h.train_losses.every(Number.isFinite) && h.val_losses.every(Number.isFinite));
    const more = await runTrain([
      "--backend",
      "webgpu",
      "--epochs",
      "3",
      "--results-dir",
      t.dir,
      "--resume-from",
      "auto",
    ]);
    assert.equal(more.code, 0, more.stderr);
    // the same 3 epochs without a stop, on webgpu and on wasm
    for (const [name, backend] of [["s", "webgpu"], ["w", "wasm"]]) {
      const r = await runTrain([
        "--backend",
        backend,
        "--epochs",
        "3",
        "--results-dir",
        t.dir,
        "--run-name",
        name,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    const history = async (run: string) =>
      JSON.parse(await Deno.readTextFile(`${t.dir}/${run}/loss_history.json`)) as Record<string, number[]>;
    const [hg, hs, hw] = [await history("g"), await history("s"), await history("w")];
    assert.deepEqual(hg.train_losses, hs.train_losses, "a resumed run continues exactly (bitwise)");
    assert.deepEqual(hg.val_losses, hs.val_losses);
    const tensors = async (run: string) =>
      (await readSafetensors(`${t.dir}/${run}/checkpoints/final_checkpoint.safetensors`)).tensors;
    const [cg, cs] = [await tensors("g"), await tensors("s")];
    for (const [k, v] of Object.entries(cs)) assert.deepEqual(cg[k].data, v.data, `${k} after the resume`);
    hw.train_losses.forEach((l, i) => {
      const rel = Math.abs(hs.train_losses[i] - l) / l;
      assert.ok(rel <= 1e-4, `epoch ${i + 1}: training loss ${hs.train_losses[i]} on webgpu, ${l} on wasm`);
    });
    const pr = await runScript("predict.ts", [
      `${t.dir}/g/checkpoints/final_checkpoint.safetensors`,
      "--backend",
      "webgpu",
      "--json",
      "--no-csv",
      "--no-figures",
    ]);
    assert.equal(pr.code, 0, pr.stderr);
    const report = JSON.parse(pr.stdout);
    assert.ok(Number.isFinite(report.model.overall.mass_concentration.rmse));
    if (adapter!.fallback) {
      const auto = await runTrain([
        "--epochs",
        "1",
        "--results-dir",
        t.dir,
        "--run-name",
        "a",
        "--backend",
        "auto",
      ]);
      assert.equal(auto.code, 0, auto.stderr);
      const autoLog = await Deno.readTextFile(`${t.dir}/a/train.log`);
      assert.match(autoLog, /backend: wasm/);
      assert.ok(!/backend: webgpu/.test(autoLog));
    }
    console.error(`adapter: ${describeAdapter(adapter!)}`);
  },
});
