import assert from "node:assert/strict";
import { gpuAdapter, initBackend, tf } from "../lib/model/backend.ts";
import { createGino, toTorch } from "../lib/model/gino.ts";
import type { Gino } from "../lib/model/gino.ts";
import { GinoGpu } from "../lib/model/gpu/engine.ts";
import { latentGrid } from "../lib/model/latent.ts";
import { Adam } from "../lib/train/adam.ts";
import { trainStep } from "../lib/train/step.ts";
import { benchPoints } from "../lib/bench/step.ts";
import { Rng } from "../lib/data/rng.ts";
import { FIXTURES, golden } from "./_helpers.ts";

// The GPU engine on any WebGPU adapter, Mesa's software one (llvmpipe) included: correctness and the GPU work a
// step costs (counts that are the same on every adapter), not speed.
const adapter = await gpuAdapter();
const ignore = adapter === undefined;
if (ignore) {
  console.error(
    "GPU engine tests skipped: no WebGPU adapter (on Debian/Ubuntu: apt-get install libegl1 libegl-mesa0 " +
      "libgl1-mesa-dri for Mesa's software adapter, or a GPU driver with Vulkan)",
  );
}

const norm = (a: ArrayLike<number>) => Math.sqrt(Array.from(a).reduce((s, v) => s + v * v, 0));
const relDiff = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  norm(Array.from(a, (v, i) => v - b[i])) / Math.max(norm(b), 1e-30);

/** A reference fixture's model (weights loaded), geometry, batch and outputs. */
async function goldenCase(name: string) {
  const { cfg, weights, inputs, outputs } = await golden(name);
  const model = createGino(cfg.gino_kwargs);
  model.loadTorchStateDict(weights);
  const P = inputs.point_coords, L = inputs.latent_queries;
  const geom = model.geometry(P.data as Float32Array, L.data as Float32Array, L.shape.slice(0, 3));
  return {
    cfg,
    model,
    geom,
    outputs,
    B: inputs.x.shape[0],
    x: inputs.x.data as Float32Array,
    y: inputs.y.data as Float32Array,
  };
}

/** A small model (the golden fixture's configuration) on `n` uniform points with a `g`^3 grid, seeded batch. */
function smallCase(n: number, g: number, b: number, cfg: Record<string, unknown>, seed = 3) {
  const model = createGino(cfg, seed);
  const pts = benchPoints(n);
  const geom = model.geometry(pts, latentGrid(pts, [g, g, g]), [g, g, g]);
  const rng = new Rng(seed);
  const cin = cfg.in_gno_out_channels as number, cout = cfg.out_channels as number;
  const x = Float32Array.from({ length: b * n * cin }, () => rng.normal());
  const y = Float32Array.from({ length: b * n * cout }, () => rng.normal() + 2);
  return { model, geom, x, y };
}

async function weightsOf(model: Gino): Promise<Float32Array[]> {
  return await Promise.all(model.variables.map(async (v) => await v.data() as Float32Array));
}

for (const name of ["gino-golden-small", "gino-golden-sparse"]) {
  Deno.test({
    name:
      `GPU engine, ${name}: outputs, loss and gradients of the reference PyTorch GINO, in one pass and per window`,
    ignore,
    async fn() {
      await initBackend("webgpu");
      const { cfg, model, geom, outputs, B, x, y } = await goldenCase(name);
      const engine = new GinoGpu(model);
      const out = await engine.forward(geom, x, B, B);
      const ref = outputs.out.data as Float32Array;
      const maxRef = Math.max(...Array.from(ref, Math.abs));
      const worst = Math.max(...Array.from(out, (v, i) => Math.abs(v - ref[i])));
      assert.ok(worst <= 1e-5 * maxRef, `output differs by ${worst} (max ${maxRef})`);
      for (const micro of [B, 1]) {
        const g = await engine.gradients(geom, x, y, B, cfg.core_len, micro);
        const refLoss = (outputs.loss.data as Float32Array)[0];
        assert.ok(
          Math.abs(g.loss - refLoss) <= 1e-6 * refLoss,
          `micro ${micro}: loss ${g.loss} vs ${refLoss}`,
        );
        let i = 0;
        for (const p of model.params) {
          const ours = toTorch(p, p.vars.map(() => g.grads[i++]));
          const rel = relDiff(ours, outputs[`grad.${p.name}`].data as Float32Array);
          assert.ok(rel <= 1e-4, `micro ${micro}: gradient of ${p.name}: relative difference ${rel}`);
        }
      }
      engine.dispose();
      geom.dispose();
      model.dispose();
    },
  });
}

Deno.test({
  name:
    "GPU engine: a training step is one upload and one submission, reads nothing back and copies nothing " +
    "(the losses come back at once), and follows the CPU path's losses, weights and moments (clipping, fitted " +
    "residual, eps)",
  ignore,
  async fn() {
    const cfg = JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const B = 4, N = 300, core = 250, steps = 3;
    const cols = 1, tin = cfg.in_gno_out_channels, tout = cfg.out_channels;
    const rng = new Rng(9);
    const fit = Float32Array.from({ length: cols * (tin + 1) * tout }, () => 0.3 * rng.normal());
    const residual = { cols, tin, tout, base: "fitted" as const, fit };
    const o = { clipNorm: 0.05, lossEps: 1e-3, residual };
    // the reference: the same steps through tfjs ops on the cpu backend (train/step.ts)
    await initBackend("cpu");
    const a = smallCase(N, 8, B, cfg);
    const optA = new Adam(a.model.variables, 1e-2);
    const xt = tf.tensor3d(a.x, [B, N, tin]), yt = tf.tensor3d(a.y, [B, N, tout]);
    const cpuLosses: number[] = [];
    for (let s = 0; s < steps; s++) {
      cpuLosses.push(await trainStep(a.model, a.geom, xt, yt, core, 2, optA, o));
    }
    const [wa, ma] = [await weightsOf(a.model), await optA.m[3].data()];
    tf.dispose([xt, yt]);
    await initBackend("webgpu");
    const b = smallCase(N, 8, B, cfg);
    const optB = new Adam(b.model.variables, 1e-2);
    const engine = new GinoGpu(b.model);
    await engine.trainStep(b.geom, b.x, b.y, B, core, 2, optB, o);
    // (the first step also uploads the patch's geometry, DFT tables, residual weights and the optimiser's
    // moments, once)
    engine.rt.resetCounters();
    for (let s = 1; s < steps; s++) await engine.trainStep(b.geom, b.x, b.y, B, core, 2, optB, o);
    const c = { ...engine.counters }, queued = steps - 1;
    assert.equal(c.readbacks, 0, "nothing read back while steps are queued");
    assert.equal(c.copies, 0, `no buffer copies or clears (${JSON.stringify(c)})`);
    assert.equal(c.uploads, queued, "one upload per step (the batch and the step's scalars)");
    assert.equal(c.submits, queued, `one command buffer per step (${JSON.stringify(c)})`);
    assert.equal(c.dispatches % queued, 0);
    assert.ok(c.dispatches / queued <= 250, `${c.dispatches / queued} dispatches per step`);
    const { losses, gradNorms } = await engine.readLosses();
    assert.equal(engine.counters.readbacks, 1, "the losses of all steps in one read-back");
    assert.equal(losses.length, steps);
    losses.forEach((l, s) =>
      assert.ok(
        Math.abs(cpuLosses[s] - l) <= 1e-5 * Math.abs(cpuLosses[s]),
        `step ${s}: loss ${l} on the engine, ${cpuLosses[s]} on the cpu backend`,
      )
    );
    assert.ok(
      gradNorms.every((g) => Number.isFinite(g) && g > 0),
      `norms computed for clipping: ${gradNorms}`,
    );
    assert.equal(optB.step, steps);
    // the tfjs variables are brought up to date when something is to read them
    await engine.sync();
    const wb = await weightsOf(b.model);
    wa.forEach((w, i) => assert.ok(relDiff(wb[i], w) <= 1e-4, `${a.model.variables[i].name} differs`));
    assert.ok(relDiff(await optB.m[3].data(), ma) <= 1e-4, "the optimiser's moments");
    engine.dispose();
  },
});

Deno.test({
  name:
    "GPU engine: steps queued without reading their losses give bitwise the losses and weights of steps " +
    "read one by one (also when each step waits for the GPU to catch up); a non-finite loss stops the updates " +
    "from that step on, and they resume after the read",
  ignore,
  async fn() {
    await initBackend("webgpu");
    const cfg = JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const B = 2, N = 240, core = 200, o = { clipNorm: 0.5 };
    const mk = () => {
      const c = smallCase(N, 8, B, cfg);
      return { c, e: new GinoGpu(c.model), opt: new Adam(c.model.variables, 1e-2) };
    };
    const nan = smallCase(N, 8, B, cfg).y.map((v, i) => (i === 7 ? NaN : v));
    // the batches of 6 steps: step 3 has a NaN target (its loss is NaN)
    const ys = (c: ReturnType<typeof smallCase>) => [c.y, c.y.map((v) => 1.5 * v), c.y, nan, c.y, c.y];
    // one by one, each loss read before the next step
    const one = mk(), oneLosses: number[] = [], weightsAt: Float32Array[][] = [];
    for (const [k, y] of ys(one.c).entries()) {
      await one.e.trainStep(one.c.geom, one.c.x, y, B, core, 1, one.opt, o);
      oneLosses.push(...(await one.e.readLosses()).losses);
      await one.e.sync();
      weightsAt[k] = await weightsOf(one.c.model);
    }
    assert.ok(Number.isNaN(oneLosses[3]) && oneLosses.filter(Number.isNaN).length === 1, `${oneLosses}`);
    assert.deepEqual(weightsAt[3], weightsAt[2], "no update at a non-finite loss");
    assert.equal(one.opt.step, 5);
    // all queued, one read: the same losses up to the non-finite one, and no update after it until the read
    const all = mk();
    for (const y of ys(all.c).slice(0, 5)) {
      await all.e.trainStep(all.c.geom, all.c.x, y, B, core, 1, all.opt, o);
    }
    assert.equal(all.opt.step, 5, "counted as if finite until read");
    /** The losses up to the non-finite one as read one by one; nothing applied from there on. */
    const stoppedAtNonFinite = async (r: typeof all, losses: number[]) => {
      assert.deepEqual(losses.slice(0, 4).map(String), oneLosses.slice(0, 4).map(String));
      assert.equal(r.opt.step, 3, "the step count is set back to the updates made");
      await r.e.sync();
      assert.deepEqual(
        await weightsOf(r.c.model),
        weightsAt[2],
        "nothing applied from the non-finite step on",
      );
    };
    await stoppedAtNonFinite(all, (await all.e.readLosses()).losses);
    // after the read, updates resume (the step count continues from the updates made)
    await all.e.trainStep(all.c.geom, all.c.x, all.c.y, B, core, 1, all.opt, o);
    assert.equal((await all.e.readLosses()).losses.length, 1);
    assert.equal(all.opt.step, 4);
    // queued steps without a non-finite loss: bitwise the one-by-one results; also when each step first waits
    // for the GPU to catch up (a bound on the uploads of queued work)
    const q = mk(), c = smallCase(N, 8, B, cfg);
    const waits = {
      c,
      e: new GinoGpu(c.model, { maxQueuedBytes: 1 }),
      opt: new Adam(c.model.variables, 1e-2),
    };
    for (const r of [q, waits]) {
      for (const y of ys(r.c).slice(0, 3)) await r.e.trainStep(r.c.geom, r.c.x, y, B, core, 1, r.opt, o);
      assert.equal(r.e.counters.readbacks, 0);
      assert.deepEqual((await r.e.readLosses()).losses, oneLosses.slice(0, 3));
      await r.e.sync();
      assert.deepEqual(await weightsOf(r.c.model), weightsAt[2]);
    }
    // losses read one read late (as training reads them in an epoch): the same losses, no wait for an empty
    // queue, and at the non-finite loss every step taken comes back, none applied from there on
    const late = mk(), lateLosses: number[][] = [];
    for (const [k, y] of ys(late.c).entries()) {
      await late.e.trainStep(late.c.geom, late.c.x, y, B, core, 1, late.opt, o);
      if (k % 2 === 1) lateLosses.push((await late.e.readEarlierLosses()).losses);
    }
    assert.deepEqual(lateLosses.map((l) => l.length), [0, 2, 4], "one read late; all at the non-finite loss");
    assert.equal(late.e.counters.idleWaits, 1, "only the read that met the non-finite loss waited for all");
    assert.equal(late.e.counters.waits, 3);
    await stoppedAtNonFinite(late, lateLosses.flat());
    for (const r of [one, all, q, waits, late]) r.e.dispose();
  },
});

/** Loss and gradients of the engine `e` on case `c`. */
async function gradsOf(e: GinoGpu, c: ReturnType<typeof smallCase>, B: number, micro: number, core: number) {
  const g = await e.gradients(c.geom, c.x, c.y, B, core, micro);
  return { loss: g.loss, flat: Float32Array.from(g.grads.flatMap((a) => Array.from(a))) };
}

Deno.test({
  name:
    "GPU engine: dispatches spread over X, Y and Z beyond the per-dimension limit give bitwise the same " +
    "loss and gradients; two engines take bitwise identical steps",
  ignore,
  async fn() {
    await initBackend("webgpu");
    const cfg = JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const B = 3, N = 240, core = 200;
    const c = smallCase(N, 8, B, cfg);
    const plain = new GinoGpu(c.model);
    // 7 workgroups per dimension: every dispatch of more than 7 (and of more than 49) workgroups is spread
    const spread = new GinoGpu(c.model, { limits: { maxWorkgroupsPerDimension: 7 } });
    assert.deepEqual(spread.rt.workgroups(40), [7, 6, 1]);
    assert.deepEqual(spread.rt.workgroups(300), [7, 7, 7]);
    const [p, s] = [await gradsOf(plain, c, B, 2, core), await gradsOf(spread, c, B, 2, core)];
    assert.equal(s.loss, p.loss);
    assert.deepEqual(s.flat, p.flat);
    // the same steps on a second model with the same weights: bitwise the same
    const d = smallCase(N, 8, B, cfg);
    const other = new GinoGpu(d.model);
    const [o1, o2] = [new Adam(c.model.variables, 1e-2), new Adam(d.model.variables, 1e-2)];
    for (let k = 0; k < 2; k++) {
      await plain.trainStep(c.geom, c.x, c.y, B, core, 2, o1);
      await other.trainStep(d.geom, d.x, d.y, B, core, 2, o2);
    }
    assert.deepEqual((await other.readLosses()).losses, (await plain.readLosses()).losses);
    await plain.sync();
    await other.sync();
    const [w1, w2] = [await weightsOf(c.model), await weightsOf(d.model)];
    w1.forEach((w, i) => assert.deepEqual(w2[i], w));
    for (const e of [plain, spread, other]) e.dispose();
  },
});

Deno.test({
  name: "GPU engine: a pass whose dispatches exceed the adapter's own per-dimension limit runs, and equals " +
    "passes of one window; a micro-batch larger than the memory budget runs in passes",
  ignore,
  async fn() {
    await initBackend("webgpu");
    const cfg = JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const N = 240, G = 32, B = 33, C = cfg.fno_hidden_channels;
    const c = smallCase(N, G, B, cfg);
    const big = new GinoGpu(c.model, { memoryBudget: 2 ** 34 });
    const threads = B * G * G * G * C; // the skip GEMM's outputs and the DFT stages over [windows, 32^3, width]
    assert.ok(
      threads / 256 > big.rt.limits.maxWorkgroupsPerDimension,
      "the shape exceeds the adapter's limit",
    );
    assert.ok(big.passSize(c.geom) >= B, `one pass of ${B} windows (fits ${big.passSize(c.geom)})`);
    const one = new GinoGpu(c.model, { memoryBudget: 1 });
    assert.equal(one.passSize(c.geom), 1);
    const [a, b] = [await big.forward(c.geom, c.x, B, B), await one.forward(c.geom, c.x, B, B)];
    assert.deepEqual(a, b);
    // gradients: one pass vs one window per pass (the same sums in another grouping)
    const small = smallCase(N, 8, 5, cfg);
    const [g1, g2] = [
      await gradsOf(new GinoGpu(small.model), small, 5, 5, 200),
      await gradsOf(new GinoGpu(small.model, { memoryBudget: 1 }), small, 5, 5, 200),
    ];
    assert.ok(Math.abs(g1.loss - g2.loss) <= 1e-6 * g1.loss);
    assert.ok(relDiff(g2.flat, g1.flat) <= 1e-5);
    big.dispose();
    one.dispose();
  },
});

Deno.test({
  name:
    "GPU engine, many patches of different sizes: after the first pass a step records no plan and creates no bind " +
    "group, pipeline or buffer, and writes only its batch (beyond what a fixed cache of 96 plans holds)",
  ignore,
  async fn() {
    await initBackend("webgpu");
    const cfg = JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const B = 2, P = 26, tin = cfg.in_gno_out_channels, tout = cfg.out_channels;
    const model = createGino(cfg, 5);
    const rng = new Rng(4);
    // sizes up and down, the largest patch neither first nor last (it would make earlier plans stale)
    const patches = Array.from({ length: P }, (_, p) => {
      const n = 30 + ((p * 7) % 13) * 3;
      const pts = benchPoints(n, p + 1);
      const geom = model.geometry(pts, latentGrid(pts, [4, 4, 4]), [4, 4, 4]);
      const x = Float32Array.from({ length: B * n * tin }, () => rng.normal());
      const y = Float32Array.from({ length: B * n * tout }, () => rng.normal() + 2);
      return { n, geom, x, y };
    });
    const engine = new GinoGpu(model);
    engine.reserve(patches.map((q) => q.geom), B, B);
    const opt = new Adam(model.variables, 1e-3);
    const o = { groups: 1, tout };
    const pass = async (forward: boolean) => {
      for (const q of patches) {
        await engine.trainStep(q.geom, q.x, q.y, B, q.n, B, opt);
        await engine.evaluate(q.geom, q.x, q.y, B, q.n, B, o);
        if (forward) await engine.forward(q.geom, q.x, B, B);
      }
      const { losses } = await engine.readLosses();
      const sums = await engine.readEvaluation();
      return { losses, sums };
    };
    await pass(true); // the first pass: each patch's plans recorded
    engine.rt.resetCounters();
    const { losses, sums } = await pass(false);
    const c = engine.counters;
    assert.equal(losses.length, P);
    assert.equal(sums.length, P);
    assert.ok(losses.every(Number.isFinite) && sums.flat().every(Number.isFinite));
    assert.equal(c.plans, 0, `plans recorded after the first pass: ${JSON.stringify(c)}`);
    assert.equal(c.bindGroups, 0, `bind groups created after the first pass: ${JSON.stringify(c)}`);
    assert.equal(c.pipelines, 0);
    assert.equal(c.buffers, 0, `buffers created after the first pass: ${JSON.stringify(c)}`);
    assert.equal(c.uploads, 2 * P, "one write per step and per validation batch (its windows)");
    assert.equal(c.submits, 2 * P + 2, "one submission per step and validation batch, one per log read");
    assert.equal(c.readbacks, 2);
    assert.equal(c.waits, 2);
    for (const q of patches) q.geom.dispose();
    engine.dispose();
    model.dispose();
  },
});
