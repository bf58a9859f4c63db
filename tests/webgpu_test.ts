import assert from "node:assert/strict";
import { describeAdapter, gpuAdapter } from "../lib/model/backend.ts";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { LENGTH_FREE_SCHEDULE, runScript, runTrain, tempDir } from "./_helpers.ts";

// Runs on any WebGPU adapter, Mesa's software one (llvmpipe) included: correctness, not speed. (The engine's
// outputs, loss and gradients against the PyTorch reference: tests/gpu_engine_test.ts.)
const adapter = await gpuAdapter();
const ignore = adapter === undefined;
if (ignore) {
  console.error(
    "webgpu tests skipped: no WebGPU adapter (on Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 " +
      "libgl1-mesa-dri for Mesa's software adapter, or a GPU driver with Vulkan)",
  );
}

Deno.test({
  name:
    "webgpu: deno task train --backend webgpu trains, resumes exactly (bitwise) after the last epoch and " +
    "after a SIGTERM between two loss read-backs, follows the wasm run, predicts and names the adapter; auto " +
    "never picks a software one",
  ignore,
  async fn() {
    await using t = await tempDir();
    // (run g is extended from 2 to 3 epochs and compared with run e: a schedule that does not depend on the
    // run's length; run k, stopped and resumed at the same length, is compared with run s on the default schedule)
    const r = await runTrain([
      ...LENGTH_FREE_SCHEDULE,
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
      ...LENGTH_FREE_SCHEDULE,
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
    for (
      const [name, backend, schedule] of [["s", "webgpu", []], ["e", "webgpu", LENGTH_FREE_SCHEDULE], [
        "w",
        "wasm",
        [],
      ]] as const
    ) {
      const r = await runTrain([
        ...schedule,
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
    // losses read back every 3 steps (8 per epoch), one read late: step 10's loss is known at step 14 (the read
    // that asks for steps 12-14 takes 9-11), the SIGTERM comes then, while steps 12-14 are queued; the run reads
    // them, stops after step 14 with a resumable checkpoint, and the resumed run ends as the uninterrupted one
    const k = ["--backend", "webgpu", "--epochs", "3", "--results-dir", t.dir, "--log-every", "3"];
    const stopped = await runTrain([...k, "--run-name", "k"], { GINO_GW_TEST_SIGTERM_AFTER_STEP: "10" });
    assert.equal(stopped.code, 3, stopped.stderr);
    assert.match(
      await Deno.readTextFile(`${t.dir}/k/train.log`),
      /stopped by SIGTERM at epoch 1 \+ 6 batches/,
    );
    const resumed = await runTrain([...k, "--resume-from", "auto"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const history = async (run: string) =>
      JSON.parse(await Deno.readTextFile(`${t.dir}/${run}/loss_history.json`)) as Record<string, number[]>;
    const [hg, hs, hw, hk, he] = await Promise.all(["g", "s", "w", "k", "e"].map(history));
    for (const [h, ref, what] of [[hg, he, "after the last epoch"], [hk, hs, "after a SIGTERM"]] as const) {
      assert.deepEqual(h.train_losses, ref.train_losses, `a run resumed ${what} continues exactly (bitwise)`);
      assert.deepEqual(h.val_losses, ref.val_losses);
    }
    const tensors = async (run: string) =>
      (await readSafetensors(`${t.dir}/${run}/checkpoints/final_checkpoint.safetensors`)).tensors;
    for (const [run, ref] of [["g", "e"], ["k", "s"]]) {
      const [c, cr] = [await tensors(run), await tensors(ref)];
      for (const [name, v] of Object.entries(cr)) {
        assert.deepEqual(c[name].data, v.data, `${name} in run ${run}`);
      }
    }
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
