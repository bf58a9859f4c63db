// The step benchmark's profile and its PyTorch baseline: what a user reads to see where time goes and how the
// toolkit compares.
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url).pathname;

async function bench(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}bench.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("bench step --profile books the step's time to every model part, forward and backward, and adds up", async () => {
  const r = await bench([
    "step",
    "--points",
    "300",
    "--batch",
    "2",
    "--latent",
    "8",
    "--radius",
    "0.3",
    "--backend",
    "wasm",
    "--steps",
    "2",
    "--profile",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split("\n").find((l) => l.startsWith('{"profile"'));
  assert.ok(line, r.stdout);
  const p = JSON.parse(line).profile;
  const parts = Object.keys(p.parts);
  for (
    const want of [
      "in GNO kernel MLP",
      "in GNO reduction",
      "lifting",
      "FNO 0 spectral conv, skip, bias",
      "FNO 3 spectral conv, skip, bias",
      "FNO 2 GELU",
      "out GNO kernel MLP",
      "out GNO reduction",
      "projection",
      "loss",
      "optimizer",
    ]
  ) assert.ok(parts.includes(want), `${want} in ${parts.join(", ")}`);
  // every part with parameters has a backward pass
  for (const name of ["lifting", "projection", "FNO 1 spectral conv, skip, bias", "out GNO kernel MLP"]) {
    assert.ok(p.parts[name].backward > 0, `${name} has backward time`);
  }
  const kernels = Object.values(p.parts as Record<string, { forward: number; backward: number }>)
    .reduce((s, t) => s + t.forward + t.backward, 0);
  const host = p.host.dispose_ms + p.host.read_ms + p.host.write_ms;
  assert.ok(
    kernels + host <= p.wall_ms * 1.01,
    `kernels ${kernels} + host ${host} within the wall time ${p.wall_ms}`,
  );
  assert.ok(kernels > 0.5 * p.wall_ms, "most of the step is in kernels");
  assert.match(r.stdout, /^step \(wall\)/m);
  assert.match(r.stdout, /BatchMatMul kernels: [\d.]+ GFLOP per step/);
  assert.ok(p.blas_gflop >= p.matmul.gflop, "the BLAS count includes the BatchMatMul kernels'");
});

const torch = (() => {
  try {
    return new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import torch, numpy"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "the PyTorch baseline builds the same model on the same points: parameters and edges as ours",
  ignore: !torch,
  async fn() {
    const r = await bench([
      "step",
      "--torch",
      "--points",
      "400",
      "--batch",
      "2",
      "--latent",
      "8",
      "--radius",
      "0.3",
      "--steps",
      "1",
      "--repeats",
      "1",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0].edges, rows[0].torch_edges, "same neighbour lists");
    assert.deepEqual(rows[0].parameters, [10_552_340, 10_552_340], "the reference model on both sides");
    assert.ok(rows[0].edges[0] > 0 && rows[0].torch_ms > 0 && rows[0].ours_ms > 0);
    assert.match(r.stdout, /speed-up/);
  },
});

Deno.test("bench tta: each recipe's time to the target is the wall time to the first epoch that reaches it, with its model against the baselines", async () => {
  const { tinyPatchData } = await import("./_helpers.ts");
  const r = await bench([
    "tta",
    "--base-data-dir",
    await tinyPatchData(),
    "--recipes",
    "default:2,exponential:2",
    "--target",
    "0.5",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
  assert.deepEqual(out.results.map((x: { recipe: string }) => x.recipe), ["default:2", "exponential:2"]);
  for (const x of out.results) {
    assert.equal(x.epochs, 2);
    assert.equal(x.val.length, 2);
    const hit = x.val.findIndex((v: number) => v <= 0.5);
    assert.equal(x.epochs_to_target, hit >= 0 ? hit + 1 : null, JSON.stringify(x.val));
    if (hit >= 0) {
      assert.ok(x.seconds_to_target > 0 && x.seconds_to_target <= x.seconds + 1e-9);
      assert.equal(x.steps_to_target, (hit + 1) * (x.steps / 2));
    }
    assert.equal(x.best_val, Math.min(...x.val));
    // the residual model's base is among the baselines, and every forecast is scored on the same windows
    assert.ok(x.rmse.model > 0 && x.rmse.persistence > 0 && x.rmse.linear > 0 && x.rmse.fitted_base > 0);
    assert.equal(x.rmse_per_lead.model.length, x.rmse_per_lead.base.length);
  }
  assert.match(r.stdout, /recipe +time to 0\.5 +epochs +steps/);
});
