import assert from "node:assert/strict";
import { initBackend, tf } from "../lib/model/backend.ts";
import { useFastKernels } from "../lib/model/kernels/register.ts";
import { createGino, relativeL2Loss } from "../lib/model/gino.ts";
import { radiusSearch } from "../lib/model/neighbors.ts";
import { dftMatrices, keptFrequencies, spectralConv } from "../lib/model/spectral.ts";
import { readSafetensors, writeSafetensors } from "../lib/io/safetensors.ts";
import { Rng } from "../lib/data/rng.ts";
import { golden, tempDir } from "./_helpers.ts";

function maxAbs(a: ArrayLike<number>) {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>) {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
function norm(a: ArrayLike<number>) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

for (const backend of ["wasm", "cpu"] as const) {
  for (const name of ["gino-golden-small", "gino-golden-sparse"]) {
    Deno.test(`${name} on ${backend}: same outputs, loss and gradients as the reference PyTorch GINO`, async () => {
      await initBackend(backend);
      const g = await golden(name);
      const model = createGino(g.cfg.gino_kwargs);
      assert.equal(model.parameterCount, g.cfg.n_params);
      model.loadTorchStateDict(g.weights);
      const T = (n: string) => tf.tensor(g.inputs[n].data as Float32Array, g.inputs[n].shape);
      const P = T("point_coords") as tf.Tensor2D, L = T("latent_queries") as tf.Tensor4D;
      const x = T("x") as tf.Tensor3D, y = T("y") as tf.Tensor3D;
      const out = model.forward(P, L, x);
      const ref = g.outputs.out.data as Float32Array;
      assert.deepEqual(out.shape, g.outputs.out.shape);
      const d = maxDiff(out.dataSync(), ref);
      assert.ok(d <= 1e-4 * maxAbs(ref), `output differs by ${d} (max |out| ${maxAbs(ref)})`);

      const geom = model.geometry(P.dataSync(), L.dataSync(), L.shape.slice(0, 3));
      assert.equal(geom.stats.in.edges, g.cfg.neighbourhoods.in_gno.edges);
      assert.equal(geom.stats.out.edges, g.cfg.neighbourhoods.out_gno.edges);
      assert.ok(Math.abs(geom.stats.in.emptyShare - g.cfg.neighbourhoods.in_gno.frac_empty) < 1e-12);
      const { value, grads } = tf.variableGrads(
        () => relativeL2Loss(model.forwardGeometry(geom, x), y, g.cfg.core_len),
        model.variables,
      );
      const loss = value.dataSync()[0], refLoss = (g.outputs.loss.data as Float32Array)[0];
      assert.ok(Math.abs(loss - refLoss) <= 1e-5 * refLoss, `loss ${loss} vs ${refLoss}`);
      const ours = model.gradientsToTorch(model.variables.map((v) => grads[v.name]));
      for (const [k, gv] of Object.entries(ours)) {
        const r = g.outputs[`grad.${k}`].data as Float32Array;
        const rel = norm(Array.from(gv, (v, i) => v - r[i])) / norm(r);
        assert.ok(rel <= 1e-3, `gradient of ${k}: relative difference ${rel}`);
      }
      tf.dispose([out, value, P, L, x, y, ...Object.values(grads)]);
      geom.dispose();
      model.dispose();
    });
  }
}

Deno.test("weights round-trip exactly through safetensors in the PyTorch names and layouts", async () => {
  await initBackend("wasm");
  await using tmp = await tempDir();
  const g = await golden("gino-golden-small");
  const model = createGino(g.cfg.gino_kwargs);
  model.loadTorchStateDict(g.weights);
  await writeSafetensors(`${tmp.dir}/w.safetensors`, model.toTorchStateDict(), { format: "pt" });
  const back = await readSafetensors(`${tmp.dir}/w.safetensors`);
  assert.deepEqual(Object.keys(back.tensors), Object.keys(g.weights));
  for (const [k, t] of Object.entries(g.weights)) {
    assert.deepEqual(back.tensors[k].shape, t.shape);
    assert.deepEqual(back.tensors[k].data, t.data, k);
  }
  assert.equal(back.metadata.format, "pt");
  const other = createGino(g.cfg.gino_kwargs, 99);
  assert.throws(
    () => other.loadTorchStateDict({ ...back.tensors, "extra.weight": back.tensors["lifting.fcs.0.bias"] }),
    /unexpected extra\.weight/,
  );
  const wrong = createGino({ ...g.cfg.gino_kwargs, fno_hidden_channels: 8 });
  assert.throws(
    () => wrong.loadTorchStateDict(back.tensors),
    /fno_blocks\.fno_skips\.0\.weight: shape \[16,16,1,1,1\] where the model has \[8,8,1,1,1\]/,
  );
  model.dispose();
  other.dispose();
  wrong.dispose();
});

Deno.test("radiusSearch() finds exactly the pairs a brute-force d^2 <= r^2 search finds, in ascending order", () => {
  const rng = new Rng(4);
  const data = Float64Array.from({ length: 300 * 3 }, () => rng.next() * 2 - 1);
  const queries = Float64Array.from({ length: 200 * 3 }, () => rng.next() * 2 - 1);
  data.set(queries.subarray(0, 3), 0); // a coincident point is its own neighbour
  const r = 0.27;
  const nb = radiusSearch(data, queries, r);
  for (let q = 0; q < 200; q++) {
    const expect: number[] = [];
    for (let j = 0; j < 300; j++) {
      const d2 = (data[j * 3] - queries[q * 3]) ** 2 + (data[j * 3 + 1] - queries[q * 3 + 1]) ** 2 +
        (data[j * 3 + 2] - queries[q * 3 + 2]) ** 2;
      if (d2 <= r * r) expect.push(j);
    }
    assert.deepEqual(Array.from(nb.index.subarray(nb.rowSplits[q], nb.rowSplits[q + 1])), expect);
  }
  assert.equal(nb.index[0], 0);
});

/** Direct float64 evaluation of the spectral convolution from its definition (no separable DFT). */
function spectralReference(
  h: Float64Array,
  dims: number[],
  wr: Float64Array,
  wi: Float64Array,
  nModes: number[],
  cout: number,
) {
  const [b, g1, g2, g3, c] = dims;
  const fx = keptFrequencies(g1, nModes[0]), fy = keptFrequencies(g2, nModes[1]);
  const mz = Math.floor(nModes[2] / 2) + 1;
  const out = new Float64Array(b * g1 * g2 * g3 * cout);
  for (let bb = 0; bb < b; bb++) {
    for (let a = 0; a < fx.length; a++) {
      for (let bi = 0; bi < fy.length; bi++) {
        for (let kz = 0; kz < mz; kz++) {
          const m = (a * fy.length + bi) * mz + kz;
          const xr = new Float64Array(c), xi = new Float64Array(c);
          for (let x = 0; x < g1; x++) {
            for (let y = 0; y < g2; y++) {
              for (let z = 0; z < g3; z++) {
                const th = -2 * Math.PI * (fx[a] * x / g1 + fy[bi] * y / g2 + kz * z / g3);
                for (let ch = 0; ch < c; ch++) {
                  const v = h[((((bb * g1 + x) * g2 + y) * g3 + z) * c) + ch] / (g1 * g2 * g3);
                  xr[ch] += v * Math.cos(th);
                  xi[ch] += v * Math.sin(th);
                }
              }
            }
          }
          for (let o = 0; o < cout; o++) {
            let yr = 0, yi = 0;
            for (let ch = 0; ch < c; ch++) {
              const k = (m * c + ch) * cout + o;
              yr += xr[ch] * wr[k] - xi[ch] * wi[k];
              yi += xr[ch] * wi[k] + xi[ch] * wr[k];
            }
            const w = kz === 0 ? 1 : 2;
            for (let x = 0; x < g1; x++) {
              for (let y = 0; y < g2; y++) {
                for (let z = 0; z < g3; z++) {
                  const th = 2 * Math.PI * (fx[a] * x / g1 + fy[bi] * y / g2 + kz * z / g3);
                  out[((((bb * g1 + x) * g2 + y) * g3 + z) * cout) + o] += w *
                    (yr * Math.cos(th) - yi * Math.sin(th));
                }
              }
            }
          }
        }
      }
    }
  }
  return out;
}

Deno.test("spectralConv() equals the DFT definition, and its gradients match finite differences", async () => {
  await initBackend("wasm");
  const rng = new Rng(8);
  const dims = [2, 6, 4, 8, 3], cout = 2, nModes = [4, 2, 4];
  const m = 4 * 2 * 3;
  const h = Float64Array.from({ length: dims.reduce((a, b) => a * b) }, () => rng.normal());
  const wr = Float64Array.from({ length: m * 3 * cout }, () => rng.normal());
  const wi = Float64Array.from({ length: m * 3 * cout }, () => rng.normal());
  const d = dftMatrices(dims.slice(1, 4), nModes);
  const ht = tf.tensor(Float32Array.from(h), dims),
    wrt = tf.tensor(Float32Array.from(wr), [m, 3, cout]),
    wit = tf.tensor(Float32Array.from(wi), [m, 3, cout]);
  const got = spectralConv(ht, wrt, wit, d).dataSync();
  const ref = spectralReference(h, dims, wr, wi, nModes, cout);
  assert.ok(maxDiff(got, ref) <= 1e-5 * maxAbs(ref), `spectral conv differs by ${maxDiff(got, ref)}`);

  // directional finite differences of sum(out * probe) with respect to h and the weights (float64 reference)
  const probe = Float64Array.from(ref, () => rng.normal());
  const f = (hh: Float64Array, r: Float64Array, i: Float64Array) =>
    spectralReference(hh, dims, r, i, nModes, cout).reduce((s, v, k) => s + v * probe[k], 0);
  const probeT = tf.tensor(Float32Array.from(probe), [dims[0], dims[1], dims[2], dims[3], cout]);
  const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
    tf.sum(tf.mul(spectralConv(a, b, c, d), probeT))
  )([ht, wrt, wit]);
  const dirs = [h, wr, wi].map((a) => Float64Array.from(a, () => rng.normal()));
  const eps = 1e-4;
  const bases = [h, wr, wi];
  for (let k = 0; k < 3; k++) {
    const plus = bases.map((a, i) => (i === k ? a.map((v, j) => v + eps * dirs[k][j]) : a));
    const minus = bases.map((a, i) => (i === k ? a.map((v, j) => v - eps * dirs[k][j]) : a));
    const fd = (f(plus[0], plus[1], plus[2]) - f(minus[0], minus[1], minus[2])) / (2 * eps);
    const an = Array.from(grads[k].dataSync()).reduce((s, v, j) => s + v * dirs[k][j], 0);
    assert.ok(
      Math.abs(fd - an) <= 1e-3 * Math.abs(fd),
      `input ${k}: finite difference ${fd} vs gradient ${an}`,
    );
  }
  tf.dispose([ht, wrt, wit, probeT, ...grads]);
});

Deno.test("GNO kernel gradients match finite differences on a tiny model", async () => {
  await initBackend("cpu");
  const rng = new Rng(12);
  const cfg = {
    in_gno_radius: 0.9,
    out_gno_radius: 0.9,
    in_gno_out_channels: 2,
    out_channels: 2,
    fno_n_layers: 1,
    fno_n_modes: [2, 2, 2],
    fno_hidden_channels: 4,
    lifting_channels: 4,
    in_gno_channel_mlp_layers: [4],
    out_gno_channel_mlp_layers: [5],
    projection_channel_ratio: 1,
    in_gno_pos_embed_channels: 4,
    out_gno_pos_embed_channels: 4,
  };
  const model = createGino(cfg, 3);
  const pts = Float32Array.from({ length: 30 * 3 }, () => rng.next() * 2 - 1);
  const lat: number[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 4; j++) {
      for (let k = 0; k < 4; k++) lat.push(-1 + (2 * i) / 3, -1 + (2 * j) / 3, -1 + (2 * k) / 3);
    }
  }
  const geom = model.geometry(pts, lat, [4, 4, 4]);
  const x = tf.tensor3d(Float32Array.from({ length: 2 * 30 * 2 }, () => rng.normal()), [2, 30, 2]);
  const y = tf.tensor3d(Float32Array.from({ length: 2 * 30 * 2 }, () => rng.normal() + 3), [2, 30, 2]);
  const lossOf = () => relativeL2Loss(model.forwardGeometry(geom, x), y, 25);
  for (
    const name of [
      "in_gno.integral_transform.channel_mlp.fcs.0.weight",
      "out_gno.integral_transform.channel_mlp.fcs.1.weight",
    ]
  ) {
    const v = model.v(name);
    const { grads } = tf.variableGrads(lossOf, [v]);
    const g = grads[v.name].dataSync();
    const base = v.dataSync().slice();
    const dir = Float32Array.from(base, () => rng.normal());
    const eps = 1e-2;
    const at = (s: number) => {
      v.assign(tf.tensor(base.map((b, i) => b + s * eps * dir[i]), v.shape));
      return lossOf().dataSync()[0];
    };
    const fd = (at(1) - at(-1)) / (2 * eps);
    v.assign(tf.tensor(base, v.shape));
    const an = Array.from(g).reduce((s, gi, i) => s + gi * dir[i], 0);
    assert.ok(
      Math.abs(fd - an) <= 2e-2 * Math.abs(an) + 1e-6,
      `${name}: finite difference ${fd} vs gradient ${an}`,
    );
  }
  geom.dispose();
  model.dispose();
});

Deno.test("live tensors stay flat over training steps (no leaks)", async () => {
  await initBackend("wasm");
  const g = await golden("gino-golden-sparse");
  const model = createGino(g.cfg.gino_kwargs);
  const T = (n: string) => tf.tensor(g.inputs[n].data as Float32Array, g.inputs[n].shape);
  const P = T("point_coords"), L = T("latent_queries");
  const x = T("x") as tf.Tensor3D, y = T("y") as tf.Tensor3D;
  const geom = model.geometry(P.dataSync(), L.dataSync(), [12, 12, 12]);
  const opt = tf.train.adam(1e-3);
  const counts: number[] = [];
  for (let step = 0; step < 4; step++) {
    const cost = opt.minimize(
      () => relativeL2Loss(model.forwardGeometry(geom, x), y, 200),
      true,
      model.variables,
    );
    cost?.dispose();
    counts.push(tf.memory().numTensors);
  }
  assert.equal(counts[3], counts[1], `live tensors per step: ${counts}`);
  opt.dispose();
  geom.dispose();
  model.dispose();
  tf.dispose([P, L, x, y]);
});

Deno.test("the fast-kernel paths (wasm, cpu) equal the stock-kernel path in outputs, loss and gradients", async () => {
  const rng = new Rng(21);
  const cfg = {
    in_gno_radius: 0.5,
    out_gno_radius: 0.6,
    in_gno_out_channels: 4,
    out_channels: 3,
    fno_n_layers: 3,
    fno_n_modes: [4, 6, 4],
    fno_hidden_channels: 8,
    lifting_channels: 12,
    in_gno_channel_mlp_layers: [8, 8],
    out_gno_channel_mlp_layers: [6],
    projection_channel_ratio: 3,
  };
  const pts = Float32Array.from({ length: 50 * 3 }, () => rng.normal());
  const lat: number[] = [];
  for (let i = 0; i < 6; i++) {
    for (let j = 0; j < 8; j++) {
      for (let k = 0; k < 6; k++) lat.push(-2 + (4 * i) / 5, -2 + (4 * j) / 7, -2 + (4 * k) / 5);
    }
  }
  const xs = Float32Array.from({ length: 2 * 50 * 4 }, () => rng.normal());
  const ys = Float32Array.from({ length: 2 * 50 * 3 }, () => rng.normal() + 2);
  let weights: ReturnType<ReturnType<typeof createGino>["toTorchStateDict"]> | undefined;
  /** Output and gradients on a backend, with its fast kernels or (fast = false) the stock ones and composed ops. */
  const run = async (backend: "wasm" | "cpu", fast: boolean) => {
    await initBackend(backend);
    useFastKernels(backend, fast);
    try {
      const model = createGino(cfg, 5);
      if (weights) model.loadTorchStateDict(weights);
      else weights = model.toTorchStateDict();
      const geom = model.geometry(pts, lat, [6, 8, 6]);
      const x = tf.tensor3d(xs, [2, 50, 4]), y = tf.tensor3d(ys, [2, 50, 3]);
      const out = model.forwardGeometry(geom, x).dataSync() as Float32Array;
      const { value, grads } = tf.variableGrads(() => relativeL2Loss(model.forwardGeometry(geom, x), y, 40));
      const g = model.variables.map((v) => grads[v.name].dataSync() as Float32Array);
      const loss = value.dataSync()[0];
      tf.dispose([x, y, value, ...Object.values(grads)]);
      geom.dispose();
      model.dispose();
      return { out, loss, g };
    } finally {
      useFastKernels(backend, true);
    }
  };
  const stock = await run("cpu", false);
  for (const [backend, fast] of [["wasm", true], ["cpu", true]] as const) {
    const r = await run(backend, fast);
    const what = `${backend} fast vs cpu stock`;
    assert.ok(
      maxDiff(r.out, stock.out) <= 1e-5 * maxAbs(stock.out) + 1e-6,
      `${what}: output ${maxDiff(r.out, stock.out)}`,
    );
    assert.ok(
      Math.abs(r.loss - stock.loss) <= 1e-5 * Math.abs(stock.loss),
      `${what}: loss ${r.loss} vs ${stock.loss}`,
    );
    r.g.forEach((g, i) => {
      assert.ok(
        maxDiff(g, stock.g[i]) <= 1e-4 * maxAbs(stock.g[i]) + 1e-7,
        `${what}: gradient ${i} ${maxDiff(g, stock.g[i])}`,
      );
    });
  }
  await initBackend("wasm");
});
