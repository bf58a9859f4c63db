// The units of the training loop, one by one: micro-batches, Adam, clipping, early
// stopping, --config, --loss-eps and residual prediction.
import assert from "node:assert/strict";
import { initBackend, tf } from "../lib/model/backend.ts";
import { createGino, relativeL2Loss } from "../lib/model/gino.ts";
import { latentGrid } from "../lib/model/latent.ts";
import { predictWindow } from "../lib/model/residual.ts";
import { Adam } from "../lib/train/adam.ts";
import { batchGradients, clipByGlobalNorm } from "../lib/train/step.ts";
import { earlyStopped, isFinished } from "../lib/train/policy.ts";
import { loadCheckpoint } from "../lib/train/checkpoint.ts";
import { defaultSettings, settingsFromConfig, settingsFromSaved } from "../lib/train/settings.ts";
import { Rng } from "../lib/data/rng.ts";
import { FIXTURES, runTrain, tempDir } from "./_helpers.ts";

/** A small GINO, its geometry on random points, and a random batch: x [B, N, 3], y [B, N, 2]. */
function tinyProblem(b: number) {
  const rng = new Rng(11);
  const n = 60;
  const pts = Float32Array.from({ length: n * 3 }, () => rng.normal());
  const model = createGino({
    in_gno_radius: 0.9,
    out_gno_radius: 0.9,
    in_gno_out_channels: 3,
    out_channels: 2,
    fno_n_layers: 2,
    fno_n_modes: [4, 4, 4],
    fno_hidden_channels: 8,
    lifting_channels: 8,
    in_gno_channel_mlp_layers: [8],
    out_gno_channel_mlp_layers: [8],
    projection_channel_ratio: 1,
  }, 3);
  const geom = model.geometry(pts, latentGrid(pts, [6, 6, 6]), [6, 6, 6]);
  const x = tf.tensor3d(Float32Array.from({ length: b * n * 3 }, () => rng.normal()), [b, n, 3]);
  const y = tf.tensor3d(Float32Array.from({ length: b * n * 2 }, () => rng.normal() + 2), [b, n, 2]);
  return { model, geom, x, y, n, dispose: () => (geom.dispose(), model.dispose(), tf.dispose([x, y])) };
}

const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / Math.max(s, 1e-30);
};

Deno.test("micro-batches of 1, 3 and 8 windows give the gradients and loss of the whole batch of 8", async () => {
  await initBackend("wasm");
  const p = tinyProblem(8);
  const run = (micro: number) => {
    const g = batchGradients(p.model, p.geom, p.x, p.y, 50, micro);
    const loss = g.losses.reduce((s, l) => s + l.dataSync()[0], 0);
    const grads = g.grads.map((t) => t.dataSync().slice() as Float32Array);
    tf.dispose([...g.grads, ...g.losses]);
    return { loss, grads, parts: g.losses.length };
  };
  const whole = run(8);
  assert.equal(whole.parts, 1);
  for (const micro of [1, 3]) {
    const r = run(micro);
    assert.equal(r.parts, Math.ceil(8 / micro));
    assert.ok(
      Math.abs(r.loss - whole.loss) <= 1e-6 * whole.loss,
      `loss with micro ${micro}: ${r.loss} vs ${whole.loss}`,
    );
    r.grads.forEach((g, i) =>
      assert.ok(maxRel(g, whole.grads[i]) < 1e-5, `gradient ${i} with micro ${micro}`)
    );
  }
  p.dispose();
});

Deno.test("Adam takes PyTorch's steps (lr 0.1, betas 0.9/0.999, eps 1e-8; values derived in float64)", async () => {
  await initBackend("wasm");
  // m_t = 0.9 m + 0.1 g;  v_t = 0.999 v + 0.001 g^2;  w -= (lr / (1 - 0.9^t)) m_t / (sqrt(v_t) / sqrt(1 - 0.999^t) + eps)
  // t = 1, g = [0.5, -4]:   m = [0.05, -0.4], v = [0.00025, 0.016], step lr/0.1 = 1, denom = |g| + eps
  //                          -> w = [1 - 0.5/(0.5 + 1e-8), -2 + 4/(4 + 1e-8)] = [0.900000002, -1.90000000025]
  // t = 2, g = [1, 2]:      m = [0.145, -0.16], v = [0.00124975, 0.019984], step 0.1/0.19, bc2 = 0.001999
  //                          -> w = [0.8034818006385094, -1.8733662963681956]
  // t = 3, g = [-3, 0.25]:  m = [-0.1695, -0.119], v = [0.01024850025, 0.020026516], step 0.1/0.271, bc2 = 0.002997001
  //                          -> w = [0.8373049228809465, -1.8563792288959287]
  const expected = [[0.900000002, -1.90000000025], [0.8034818006385094, -1.8733662963681956], [
    0.8373049228809465,
    -1.8563792288959287,
  ]];
  const w = tf.variable(tf.tensor1d([1, -2]));
  const adam = new Adam([w], 0.1);
  [[0.5, -4], [1, 2], [-3, 0.25]].forEach((g, t) => {
    const grad = tf.tensor1d(g);
    adam.apply([grad]);
    grad.dispose();
    const got = w.dataSync();
    expected[t].forEach((e, i) =>
      assert.ok(Math.abs(got[i] - e) <= 2e-7 * Math.abs(e), `step ${t + 1}: ${got[i]} vs ${e}`)
    );
  });
  assert.equal(adam.getState().step, 3);
  adam.dispose();
  w.dispose();
});

Deno.test("Adam updates a variable that owns its memory in place, with the kernel's values, and never writes memory another tensor holds", async () => {
  await initBackend("wasm");
  const rng = new Rng(11);
  const n = 1027; // not a multiple of the SIMD width
  const values = (s: number) => Float32Array.from({ length: n }, () => rng.normal() * s);
  const w0 = values(0.1), grads = [values(0.01), values(0.02), values(0.005)];
  const run = (aliased: boolean) => {
    const w = tf.tidy(() => tf.variable(tf.tensor1d(w0)));
    const adam = new Adam([w], 1e-2);
    const ids = new Set<unknown>();
    let alias: tf.Tensor | undefined;
    const held: number[][] = [];
    for (const g of grads) {
      alias = aliased ? tf.reshape(w, [n, 1]) : undefined; // shares w's memory
      const before = alias ? Array.from(alias.dataSync()) : undefined;
      const gt = tf.tensor1d(g);
      adam.apply([gt]);
      gt.dispose();
      ids.add(w.dataId);
      if (alias) held.push(before!, Array.from(alias.dataSync()));
      alias?.dispose();
    }
    const out = { w: w.dataSync().slice(), m: adam.m[0].dataSync().slice(), ids: ids.size, held };
    adam.dispose();
    w.dispose();
    return out;
  };
  const own = run(false), shared = run(true);
  assert.equal(own.ids, 1, "w keeps its memory: updated in place");
  assert.equal(shared.ids, 3, "w shared: a new buffer each step");
  assert.deepEqual(own.w, shared.w, "in place and the kernel give the same bits");
  assert.deepEqual(own.m, shared.m);
  for (let i = 0; i < shared.held.length; i += 2) {
    assert.deepEqual(shared.held[i + 1], shared.held[i], "a tensor sharing w's memory keeps its values");
  }
});

Deno.test("gradient clipping scales the global norm down to the limit and leaves smaller gradients alone", async () => {
  await initBackend("wasm");
  const g = [tf.tensor1d([3, 0]), tf.tensor2d([[0, 4]])]; // global norm 5
  const clipped = await clipByGlobalNorm(g, 1);
  assert.ok(Math.abs(clipped.norm - 5) < 1e-6);
  const flat = clipped.grads.flatMap((t) => Array.from(t.dataSync()));
  assert.ok(Math.abs(Math.hypot(...flat) - 5 / (5 + 1e-6)) < 1e-6, "norm after clipping");
  assert.ok(Math.abs(flat[0] / flat[3] - 0.75) < 1e-6, "direction kept");
  const small = [tf.tensor1d([0.3, 0.4])];
  const same = await clipByGlobalNorm(small, 1);
  assert.equal(same.grads[0], small[0], "below the limit the same tensors come back");
  tf.dispose([...clipped.grads, ...same.grads]);
});

Deno.test("early stopping ends the run when `patience` epochs in a row do not improve on the best", async () => {
  const st = (vals: number[]) => {
    let best = Infinity, bad = 0;
    for (const v of vals) v < best ? (best = v, bad = 0) : bad++;
    return { epoch: vals.length, step_in_epoch: 0, early_stopping: { bad_epochs: bad } };
  };
  const policy = { every: 5, epochs: 100, patience: 2 };
  assert.ok(!earlyStopped(st([3, 2, 2.5]) as never, policy));
  assert.ok(earlyStopped(st([3, 2, 2.5, 2.1]) as never, policy));
  assert.ok(isFinished(st([3, 2, 2.5, 2.1]) as never, policy));
  assert.ok(!earlyStopped(st([3, 2, 2.5, 2.1]) as never, { ...policy, patience: undefined }));
  // end to end: a large learning rate that makes the validation loss stall
  await using t = await tempDir();
  const r = await runTrain([
    "--epochs",
    "40",
    "--results-dir",
    t.dir,
    "--run-name",
    "e",
    "--early-stopping-patience",
    "2",
    "--learning-rate",
    "0.05",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/e/loss_history.json`));
  const vals: number[] = h.val_losses;
  assert.ok(vals.length < 40, `stopped early (${vals.length} epochs)`);
  // it stopped at the first epoch where two epochs in a row had not improved on the best before them
  const stopAt = vals.findIndex((_, i) =>
    i >= 2 && Math.min(...vals.slice(0, i - 1)) <= Math.min(vals[i - 1], vals[i])
  );
  assert.equal(vals.length, stopAt + 1);
  assert.match(h.sessions.at(-1).exit, /^early stopping: no better validation loss for 2 epochs/);
  assert.equal(
    (await loadCheckpoint(`${t.dir}/e/checkpoints/final_checkpoint.safetensors`)).state.epoch,
    vals.length,
  );
});

Deno.test("--config gives settings by flag name; flags given as well override it; a run's config.json works too", async () => {
  await using t = await tempDir();
  const cfg = `${t.dir}/c.json`;
  await Deno.writeTextFile(
    cfg,
    JSON.stringify({
      epochs: 5,
      window_stride: 2,
      "lr-gamma": 0.5,
      seed: 7,
      "target-cols": "mass_concentration",
    }),
  );
  const r = await runTrain(["--config", cfg, "--epochs", "1", "--results-dir", t.dir, "--run-name", "c"]);
  assert.equal(r.code, 0, r.stderr);
  const saved = settingsFromSaved(JSON.parse(await Deno.readTextFile(`${t.dir}/c/config.json`)).settings);
  assert.equal(saved.optim.epochs, 1, "the flag wins");
  assert.equal(saved.data.windowStride, 2);
  assert.equal(saved.data.seed, 7);
  assert.equal(saved.optim.lrGamma, 0.5);
  assert.throws(() => settingsFromConfig({ "epochz": 3 }), /config key 'epochz' is not a known setting/);
  assert.throws(() => settingsFromConfig({ "epochs": 0 }), /config key 'epochs': must be at least 1/);
  // a run's config.json as --config: the same settings again
  const again = await runTrain([
    "--config",
    `${t.dir}/c/config.json`,
    "--results-dir",
    t.dir,
    "--run-name",
    "c2",
  ]);
  assert.equal(again.code, 0, again.stderr);
  const s2 = settingsFromSaved(JSON.parse(await Deno.readTextFile(`${t.dir}/c2/config.json`)).settings);
  assert.deepEqual({ ...s2, run: { ...s2.run, runName: "c" } }, saved);
});

Deno.test("the first format's settings (flag names) read as the typed settings the same flags give now", async () => {
  const old = JSON.parse(await Deno.readTextFile(`${FIXTURES}run-v1/v1run/config.json`)).settings;
  const s = settingsFromSaved(old);
  const want = defaultSettings();
  Object.assign(want.data, {
    baseDataDir: old["base-data-dir"],
    inputWindow: 3,
    outputWindow: 2,
    batchSize: 4,
  });
  Object.assign(want.model, {
    gnoRadius: 0.6,
    latentGrid: [8, 8, 8],
    fnoModes: [4, 4, 4],
    fnoHiddenChannels: 8,
    fnoLayers: 2,
    liftingChannels: 8,
    gnoMlpLayers: [8],
    projectionChannelRatio: 1,
  });
  // a run of the first format had the exponential schedule: it keeps it when resumed
  Object.assign(want.optim, { epochs: 3, lrSchedule: "exponential" });
  Object.assign(want.run, { resultsDir: old["results-dir"], runName: "v1run", backend: "wasm" });
  assert.deepEqual(s, want);
});

Deno.test("--loss-eps adds epsilon to the relative L2 loss's denominator", async () => {
  await initBackend("wasm");
  // one window, two points (both core), two output steps: |p - y| / (|y| + eps), averaged over the points
  const p = tf.tensor3d([[[1, 2], [0, 0]]]), y = tf.tensor3d([[[1, 1], [3, 4]]]);
  const l0 = relativeL2Loss(p, y, 2).dataSync()[0], l1 = relativeL2Loss(p, y, 2, 0.5).dataSync()[0];
  assert.ok(Math.abs(l0 - (1 / Math.SQRT2 + 5 / 5) / 2) < 1e-6);
  assert.ok(Math.abs(l1 - (1 / (Math.SQRT2 + 0.5) + 5 / 5.5) / 2) < 1e-6);
  tf.dispose([p, y]);
});

Deno.test("residual prediction adds the last input step of each column to the model's output", async () => {
  await initBackend("wasm");
  const p = tinyProblem(2);
  // x holds C = 1 column of T_in = 3 steps; y has T_out = 2: the residual repeats step 3 over both output steps
  const plain = predictWindow(p.model, p.geom, p.x).arraySync();
  const res = predictWindow(p.model, p.geom, p.x, { cols: 1, tin: 3, tout: 2 }).arraySync();
  const x = p.x.arraySync();
  for (let b = 0; b < 2; b++) {
    for (let n = 0; n < p.n; n++) {
      for (let k = 0; k < 2; k++) assert.ok(Math.abs(res[b][n][k] - (plain[b][n][k] + x[b][n][2])) < 1e-5);
    }
  }
  p.dispose();
});

Deno.test("the backend probe's native stderr is silenced for its length only, and restored after it", async () => {
  await using t = await tempDir();
  const script = `${t.dir}/probe.ts`;
  const lib = new URL("../lib/io/quiet.ts", import.meta.url).href;
  await Deno.writeTextFile(
    script,
    `import { withoutNativeStderr } from "${lib}";
const say = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s));
const got = await withoutNativeStderr(async () => { say("driver noise\\n"); await new Promise((r) => setTimeout(r, 5)); return 7; });
await withoutNativeStderr(async () => { say("noise before a failure\\n"); throw new Error("x"); }).catch(() => {});
say("after " + got + "\\n");
`,
  );
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", script], stderr: "piped" })
    .output();
  assert.equal(new TextDecoder().decode(out.stderr), "after 7\n");
  // a training run that lets the backend be chosen (auto: the probe) prints nothing on stderr
  await using r0 = await tempDir();
  const r = await runTrain(["--backend", "auto", "--epochs", "1", "--results-dir", r0.dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
});
