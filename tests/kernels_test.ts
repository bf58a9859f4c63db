import assert from "node:assert/strict";
import { initBackend, tf } from "../lib/model/backend.ts";
import { edgeReduce, edgeReduceComposed, gatherRows, gelu, geluComposed } from "../lib/model/ops.ts";
import { Rng } from "../lib/data/rng.ts";

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) {
  assert.equal(a.length, b.length, what);
  let worst = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  assert.ok(worst <= tol * Math.max(scale, 1), `${what}: max difference ${worst} (scale ${scale})`);
}

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`${backend}: the fused edge reduction and its gradients equal gather-multiply-segment-sum`, async () => {
    await initBackend(backend);
    const rng = new Rng(2);
    const E = 500, M = 40, S = 30, B = 3, C = 5;
    const k = tf.tensor2d(Float32Array.from({ length: E * C }, () => rng.normal()), [E, C]);
    const feats = tf.tensor3d(Float32Array.from({ length: M * B * C }, () => rng.normal()), [M, B, C]);
    const src = tf.tensor1d(Int32Array.from({ length: E }, () => rng.int(M)), "int32");
    const dst = tf.tensor1d(Int32Array.from({ length: E }, () => rng.int(S)), "int32");
    const probe = tf.tensor3d(Float32Array.from({ length: S * B * C }, () => rng.normal()), [S, B, C]);
    const f = (fn: typeof edgeReduce) => (a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(fn(a as tf.Tensor2D, b as tf.Tensor3D, src, dst, S), probe));
    close(
      edgeReduce(k, feats, src, dst, S).dataSync(),
      edgeReduceComposed(k, feats, src, dst, S).dataSync(),
      1e-6,
      "forward",
    );
    const g1 = tf.grads(f(edgeReduce))([k, feats]), g2 = tf.grads(f(edgeReduceComposed))([k, feats]);
    close(g1[0].dataSync(), g2[0].dataSync(), 1e-6, "d/dk");
    close(g1[1].dataSync(), g2[1].dataSync(), 1e-6, "d/dfeats");
    const rows = tf.tensor2d(Float32Array.from({ length: M * C }, () => rng.normal()), [M, C]);
    const pr = tf.tensor2d(Float32Array.from({ length: E * C }, () => rng.normal()), [E, C]);
    close(gatherRows(rows, src).dataSync(), tf.gather(rows, src).dataSync(), 0, "gather rows");
    const gr1 = tf.grad((r: tf.Tensor) => tf.sum(tf.mul(gatherRows(r, src), pr)))(rows);
    const gr2 = tf.grad((r: tf.Tensor) => tf.sum(tf.mul(tf.gather(r, src), pr)))(rows);
    close(gr1.dataSync(), gr2.dataSync(), 1e-6, "gather rows gradient");
  });

  Deno.test(`${backend}: the fused GELU matches the erf form to 3e-7, and its gradient matches too`, async () => {
    await initBackend(backend);
    const xs = Float32Array.from({ length: 4001 }, (_, i) => -10 + i / 200);
    const x = tf.tensor1d(xs);
    close(gelu(x).dataSync(), Array.from(xs, (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2))), 3e-7, "gelu");
    const d1 = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x).dataSync();
    const d2 = tf.grad((t: tf.Tensor) => tf.sum(geluComposed(t)))(x).dataSync();
    close(d1, d2, 2e-6, "gelu gradient");
  });

  Deno.test(`${backend}: matmul with a shared or broadcast operand and the Sum fast paths agree with plain loops`, async () => {
    await initBackend(backend);
    const rng = new Rng(6);
    const a = Float32Array.from({ length: 5 * 7 }, () => rng.normal());
    const b = Float32Array.from({ length: 9 * 7 * 4 }, () => rng.normal());
    const at = tf.tensor3d(a, [1, 5, 7]), bt = tf.tensor3d(b, [9, 7, 4]);
    const got = tf.matMul(at, bt).dataSync();
    const want = new Float32Array(9 * 5 * 4);
    for (let i = 0; i < 9; i++) {
      for (let m = 0; m < 5; m++) {
        for (let n = 0; n < 4; n++) {
          let s = 0;
          for (let k = 0; k < 7; k++) s += a[m * 7 + k] * b[(i * 7 + k) * 4 + n];
          want[(i * 5 + m) * 4 + n] = s;
        }
      }
    }
    close(got, want, 1e-5, "shared A");
    const at2 = tf.tensor3d(a, [1, 7, 5]);
    close(
      tf.matMul(at2, bt, true).dataSync(),
      tf.matMul(tf.transpose(at2, [0, 2, 1]), bt).dataSync(),
      1e-5,
      "shared A transposed",
    );
    const bT = tf.transpose(bt, [0, 2, 1]);
    close(tf.matMul(at, bT, false, true).dataSync(), want, 1e-5, "shared A, B transposed");
    const big = tf.tensor3d(Float32Array.from({ length: 6 * 5 * 4 }, () => rng.normal()), [6, 5, 4]);
    const vals = big.dataSync();
    const lead = new Float64Array(4), trail = new Float64Array(30);
    for (let i = 0; i < 30; i++) {
      for (let c = 0; c < 4; c++) {
        lead[c] += vals[i * 4 + c];
        trail[i] += vals[i * 4 + c];
      }
    }
    close(tf.sum(big, [0, 1]).dataSync(), lead, 1e-5, "sum over leading axes");
    close(tf.sum(big, 2).dataSync(), trail, 1e-5, "sum over the last axis");
    close(
      tf.sum(big, 1).dataSync(),
      tf.sum(tf.transpose(big, [1, 0, 2]), 0).dataSync(),
      1e-5,
      "sum over a middle axis",
    );
    assert.deepEqual(tf.sum(big, [0, 1], true).shape, [1, 1, 4]);
  });
}

Deno.test("without a system BLAS the stock matmul kernel is used, with one line saying so", async () => {
  const root = new URL("../", import.meta.url).pathname;
  const code = `
    import { initBackend, tf } from "${root}lib/model/backend.ts";
    const info = await initBackend("wasm", (m) => console.log(m));
    console.log(JSON.stringify({ blas: info.kernels?.blas ?? null, v: Array.from(tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync()) }));
  `;
  {
    const cmd = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", `${root}deno.json`, code],
      env: { GINO_GW_BLAS: "none" },
      stdout: "piped",
      stderr: "piped",
      cwd: root,
    });
    const out = await cmd.output();
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.match(text, /system BLAS not used \(disabled by GINO_GW_BLAS\)/);
    const last = JSON.parse(text.trim().split("\n").at(-1)!);
    assert.equal(last.blas, null);
    assert.deepEqual(last.v, [3, 3, 3, 3]);
  }
});

/** erf in float64 (series / continued fraction), for reference values. */
function erf64(x: number): number {
  const z = Math.abs(x);
  let s: number;
  if (z < 3) {
    let term = z, sum = z;
    for (let n = 1; n < 200; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    s = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let k = 60; k >= 1; k--) f = k / 2 / (z + f);
    s = 1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f);
  }
  return x < 0 ? -s : s;
}
