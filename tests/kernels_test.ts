import assert from "node:assert/strict";
import { initBackend, tf } from "../lib/model/backend.ts";
import { FAST_KERNELS } from "../lib/model/kernels/register.ts";
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

// (the webgpu backend's kernels are the GPU engine's: tests/gpu_engine_test.ts, tests/gpu_gemm_test.ts)
for (const backend of ["wasm", "cpu"] as const) {
  const gradTol = 2e-6;
  Deno.test({
    name:
      `${backend}: every fast kernel it has equals its worked example, and its gradients equal the stock ops'`,
    async fn() {
      const info = await initBackend(backend);
      const registered = info.kernels?.registered ?? [];
      const checked: string[] = [];
      // a kernel with several outputs is checked on its first
      const first = (r: unknown) => (Array.isArray(r) ? r[0] : r) as tf.Tensor;
      for (const k of FAST_KERNELS) {
        if (!registered.includes(k.name) || !k.example) continue;
        const ex = k.example();
        const out = first(tf.engine().runKernel(k.name, ex.inputs, ex.attrs as tf.NamedAttrMap));
        close(await out.data(), ex.expect, ex.tol, `${backend} ${k.name}`);
        if (ex.composed && ex.differentiate) {
          const rng = new Rng(9);
          const probe = tf.tensor(Float32Array.from({ length: out.size }, () => rng.normal()), out.shape);
          const names = ex.differentiate;
          const withInputs = (ts: tf.Tensor[]) => ({
            ...ex.inputs,
            ...Object.fromEntries(names.map((n, i) => [n, ts[i]])),
          });
          const run = (inputs: Record<string, tf.Tensor>) =>
            ex.op ? ex.op(inputs) : first(tf.engine().runKernel(k.name, inputs, ex.attrs as tf.NamedAttrMap));
          const fast = (...ts: tf.Tensor[]) => tf.sum(tf.mul(run(withInputs(ts)), probe));
          const composed = (...ts: tf.Tensor[]) => tf.sum(tf.mul(ex.composed!(withInputs(ts)), probe));
          const g1 = tf.grads(fast)(names.map((n) => ex.inputs[n]));
          const g2 = tf.grads(composed)(names.map((n) => ex.inputs[n]));
          for (let i = 0; i < names.length; i++) {
            close(await g1[i].data(), await g2[i].data(), gradTol, `${backend} ${k.name} d/d${names[i]}`);
          }
        }
        checked.push(k.name);
      }
      // the gradient kernels are checked through the gradients of the kernels they belong to
      const untested = registered.filter((n) => !checked.includes(n) && !/Grad/.test(n));
      assert.deepEqual(untested, [], "registered kernels without a worked example");
      assert.ok(checked.length >= (backend === "wasm" ? 6 : 5), `checked ${checked.join(", ")}`);
    },
  });
}

for (const backend of ["wasm", "cpu"] as const) {
  Deno.test(`${backend}: matmul transposes and Sum over middle axes agree with the composed forms`, async () => {
    await initBackend(backend);
    const rng = new Rng(6);
    const a = tf.tensor3d(Float32Array.from({ length: 35 }, () => rng.normal()), [1, 7, 5]);
    const b = tf.tensor3d(Float32Array.from({ length: 9 * 7 * 4 }, () => rng.normal()), [9, 7, 4]);
    const plain = tf.matMul(tf.transpose(a, [0, 2, 1]), b).dataSync();
    close(tf.matMul(a, b, true).dataSync(), plain, 1e-5, "shared A transposed");
    close(
      tf.matMul(tf.transpose(a, [0, 2, 1]), tf.transpose(b, [0, 2, 1]), false, true).dataSync(),
      plain,
      1e-5,
      "B transposed",
    );
    const big = tf.tensor3d(Float32Array.from({ length: 6 * 5 * 4 }, () => rng.normal()), [6, 5, 4]);
    close(
      tf.sum(big, 1).dataSync(),
      tf.sum(tf.transpose(big, [1, 0, 2]), 0).dataSync(),
      1e-5,
      "sum over a middle axis",
    );
    assert.deepEqual(tf.sum(big, [0, 1], true).shape, [1, 1, 4]);
  });
}

Deno.test("without a system BLAS the stock matmul kernel is used, with one line saying what it costs and how to install one", async () => {
  const root = new URL("../", import.meta.url).pathname;
  const code = `
    import { initBackend, tf } from "${root}lib/model/backend.ts";
    const info = await initBackend("wasm", (m) => console.log(m));
    const a = tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]), b = tf.tensor2d([1, 0, 2, 1, 3, -1], [2, 3]);
    const flags = [[false, false], [true, true], [true, false], [false, true]].map(([ta, tb]) =>
      Array.from(tf.matMul(ta ? a.transpose() : a, tb ? b.transpose() : b, ta, tb).dataSync()));
    console.log(JSON.stringify({ blas: info.kernels?.blas ?? null, v: Array.from(tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync()), flags }));
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
    assert.match(
      text,
      /warning: no system BLAS \(disabled by GINO_GW_BLAS\): training runs about \S+ slower .*To install one: .*GINO_GW_BLAS=/,
    );
    assert.equal(text.match(/no system BLAS/g)?.length, 1, "said once");
    const last = JSON.parse(text.trim().split("\n").at(-1)!);
    assert.equal(last.blas, null);
    assert.deepEqual(last.v, [3, 3, 3, 3]);
    // the same product with every combination of transpose flags (the no-BLAS path transposes first)
    for (const f of last.flags) assert.deepEqual(f, last.flags[0]);
  }
});
