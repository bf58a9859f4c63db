import assert from "node:assert/strict";
import { initBackend, tf } from "../lib/model/backend.ts";
import { createGino } from "../lib/model/gino.ts";
import { predictWindow, residualBase, residualOf, startAtBase } from "../lib/model/residual.ts";
import type { Patch } from "../lib/data/dataset.ts";
import { fitTemporalBase } from "../lib/train/base_fit.ts";

/** A patch whose every point follows its own quadratic in time (plus a constant column offset). */
function quadraticPatch(n: number, steps: number, seed: number): Patch {
  const cols = 2;
  const values = new Float32Array(cols * n * steps);
  for (let c = 0; c < cols; c++) {
    for (let p = 0; p < n; p++) {
      const a = Math.sin(seed + p * 1.7 + c), b = Math.cos(p * 0.3 + seed), q = 0.01 * Math.sin(p + c * 2);
      for (let t = 0; t < steps; t++) values[(c * n + p) * steps + t] = a + b * 0.05 * t + q * t * t;
    }
  }
  return {
    id: seed,
    name: `patch_${seed}`,
    nCore: n,
    nGhost: 0,
    n,
    steps,
    trainSteps: Math.floor(steps * 0.7),
    coords: new Float32Array(n * 3),
    values,
    droppedPoints: 0,
  };
}

/** x [1, n, C * tin] of windows starting at t0, and the true continuation [n, C * tout]. */
function windowOf(p: Patch, cols: number, tin: number, tout: number, t0: number) {
  const x = new Float32Array(p.n * cols * tin), y = new Float32Array(p.n * cols * tout);
  for (let n = 0; n < p.n; n++) {
    for (let c = 0; c < cols; c++) {
      const row = (c * p.n + n) * p.steps + t0;
      for (let i = 0; i < tin; i++) x[(n * cols + c) * tin + i] = p.values[row + i];
      for (let h = 0; h < tout; h++) y[(n * cols + c) * tout + h] = p.values[row + tin + h];
    }
  }
  return { x: tf.tensor3d(x, [1, p.n, cols * tin]), y };
}

Deno.test("the fitted base is the least-squares map of the input window: exact on quadratic series, also unseen steps", async () => {
  await initBackend("wasm");
  const patches = [quadraticPatch(40, 30, 1), quadraticPatch(25, 30, 2)];
  const cols = 2, tin = 4, tout = 3;
  const fit = fitTemporalBase(patches, cols, tin, tout);
  assert.equal(fit.length, cols * (tin + 1) * tout);
  // a quadratic's next values are a fixed linear combination of its last three: the fit must find one exactly
  const { x, y } = windowOf(patches[1], cols, tin, tout, 22); // in the validation part (never fitted)
  const base = residualBase(x, residualOf({ residual: true, residualBase: "fitted" }, cols, tin, tout, fit)!);
  const got = base.dataSync();
  let worst = 0;
  for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(got[i] - y[i]));
  const scale = Math.max(...Array.from(y, Math.abs));
  assert.ok(worst < 1e-3 * scale, `fitted base misses a quadratic by ${worst} (values up to ${scale})`);
  // linear extrapolation cannot follow the curvature
  const lin = residualBase(x, { cols, tin, tout, base: "linear" }).dataSync();
  let linWorst = 0;
  for (let i = 0; i < y.length; i++) linWorst = Math.max(linWorst, Math.abs(lin[i] - y[i]));
  assert.ok(linWorst > 10 * worst, `linear ${linWorst} vs fitted ${worst}`);
  assert.throws(
    () => residualOf({ residual: true, residualBase: "fitted" }, cols, tin, tout),
    /needs 30 weights/,
  );
});

Deno.test("linear and last bases: step h is last + h (last - previous), and the last step repeated", async () => {
  await initBackend("wasm");
  // one point, two columns, tin 3: column 0 = 1, 2, 4; column 1 = 5, 5, 3
  const x = tf.tensor3d([1, 2, 4, 5, 5, 3], [1, 1, 6]);
  assert.deepEqual(Array.from(residualBase(x, { cols: 2, tin: 3, tout: 2, base: "linear" }).dataSync()), [
    6,
    8,
    1,
    -1,
  ]);
  assert.deepEqual(Array.from(residualBase(x, { cols: 2, tin: 3, tout: 2, base: "last" }).dataSync()), [
    4,
    4,
    3,
    3,
  ]);
});

Deno.test("a new residual model starts exactly at its base forecast (output layer zero); a plain one does not", async () => {
  await initBackend("wasm");
  const cfg = {
    in_gno_radius: 0.9,
    in_gno_out_channels: 4,
    in_gno_channel_mlp_layers: [8],
    fno_n_layers: 1,
    fno_n_modes: [2, 2, 2],
    fno_hidden_channels: 4,
    lifting_channels: 4,
    out_gno_radius: 0.9,
    out_gno_channel_mlp_layers: [8],
    projection_channel_ratio: 1,
    out_channels: 4,
  };
  const model = createGino(cfg, 3);
  const pts = Float32Array.from({ length: 5 * 3 }, (_, i) => ((i * 37) % 11) / 11);
  const lat = Float32Array.from({ length: 4 * 4 * 4 * 3 }, (_, i) => ((i * 13) % 7) / 7);
  const geom = model.geometry(pts, lat, [4, 4, 4]);
  const x = tf.tensor3d(Float32Array.from({ length: 5 * 4 }, (_, i) => Math.sin(i)), [1, 5, 4]);
  const spec = { cols: 2, tin: 2, tout: 2, base: "linear" as const };
  const base = residualBase(x, spec).dataSync();
  const before = predictWindow(model, geom, x, spec).dataSync();
  assert.ok(before.some((v, i) => Math.abs(v - base[i]) > 1e-4), "a random output layer moves the forecast");
  startAtBase(model);
  assert.deepEqual(Array.from(predictWindow(model, geom, x, spec).dataSync()), Array.from(base));
  model.dispose();
});
