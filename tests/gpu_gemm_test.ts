import assert from "node:assert/strict";
import { gpuAdapter, initBackend } from "../lib/model/backend.ts";
import { createGino } from "../lib/model/gino.ts";
import { REFERENCE_GINO } from "../lib/model/config.ts";
import { latentGrid } from "../lib/model/latent.ts";
import { stepDispatches } from "../lib/model/gpu/census.ts";
import { GpuRuntime } from "../lib/model/gpu/runtime.ts";
import { engineGemms, runGemm } from "../lib/bench/gemm.ts";
import { benchPoints } from "../lib/bench/step.ts";
import { FIXTURES } from "./_helpers.ts";

// The GPU engine's matrix products at every shape a training step runs, against float64 products on the host;
// and the profile's costs. Any WebGPU adapter, Mesa's software one (llvmpipe) included.
const adapter = await gpuAdapter();
const ignore = adapter === undefined;
if (ignore) console.error("GPU GEMM tests skipped: no WebGPU adapter (see tests/gpu_engine_test.ts)");

/** A model of `cfg` on `n` uniform points with a `g`^3 latent grid. */
function caseOf(cfg: Record<string, unknown>, n: number, g: number) {
  const model = createGino(cfg, 1);
  const pts = benchPoints(n);
  return { model, geom: model.geometry(pts, latentGrid(pts, [g, g, g]), [g, g, g]) };
}

Deno.test("GPU engine plans: every dispatch of a step has a cost (FLOPs and bytes) for the profile's rates", async () => {
  await initBackend(ignore ? "wasm" : "webgpu");
  const { model, geom } = caseOf({ ...REFERENCE_GINO, in_gno_radius: 0.3, out_gno_radius: 0.3 }, 300, 8);
  const list = stepDispatches(model, geom, 2);
  assert.ok(list.length > 100, `${list.length} dispatches`);
  for (const d of list) {
    assert.ok(d.cost && d.cost.bytes > 0 && d.cost.flops >= 0, `${d.label}: no cost`);
  }
  // the products' FLOPs are what their shapes say
  const skip = list.find((d) => d.label === "FNO 0 skip, bias, inverse DFT z, spectral sum, GELU")!;
  assert.ok(skip.cost!.flops >= 2 * 2 * 512 * 64 * 64);
  geom.dispose();
  model.dispose();
});

Deno.test({
  name:
    "GPU matrix products: every shape a training step runs (row products in each tile width, transposed, " +
    "vec4 and scalar, 4 and 8 rows per invocation, every epilogue, the inverse DFT along z in it; weight " +
    "gradients with their bias rows, " +
    "split and summed) equals a float64 product",
  ignore,
  async fn() {
    await initBackend("webgpu");
    const rt = GpuRuntime.forEngine();
    const golden =
      JSON.parse(await Deno.readTextFile(`${FIXTURES}gino-golden-small/config.json`)).gino_kwargs;
    const kernels = new Set<string>();
    let eightRows = 0;
    const results = new Map<string, Float32Array>();
    const cases: [Record<string, unknown>, number, number, number, boolean][] = [
      [{ ...REFERENCE_GINO, in_gno_radius: 0.3, out_gno_radius: 0.3 }, 300, 8, 3, false],
      [{ ...REFERENCE_GINO, in_gno_radius: 0.2, out_gno_radius: 0.2 }, 333, 10, 1, true],
      [golden, 241, 8, 2, true],
    ];
    for (const [[cfg, n, g, m, residual], gemmRows] of cases.flatMap((c) => [[c, 4], [c, 8]] as const)) {
      const { model, geom } = caseOf(cfg, n, g);
      for (const shape of engineGemms(stepDispatches(model, geom, m, { residual, gemmRows }))) {
        kernels.add(shape.spec.key);
        const run = await runGemm(rt, shape, 1);
        assert.ok(
          run.error <= 2e-6,
          `${shape.labels[0]} (${shape.spec.key}, ${shape.R} x ${shape.N} x ${shape.K}): error ${run.error}`,
        );
        const same = `${shape.spec.key.replace("_r8", "")}:${shape.R}:${shape.N}:${shape.K}:${
          shape.labels[0]
        }`;
        if (gemmRows === 4) results.set(same, run.result);
        else if (shape.spec.key.includes("_r8")) {
          // the same sums in the same order as with 4 rows (same data, same seed): bitwise the same result
          assert.deepEqual(run.result, results.get(same), `${shape.spec.key}: 8 rows vs 4`);
          eightRows++;
        }
      }
      geom.dispose();
      model.dispose();
    }
    // the variants the engine chooses by shape are all among them
    const keys = [...kernels].join(" ");
    for (
      const v of [
        "rgemm_16",
        "rgemm_32",
        "rgemm_64",
        "_bt",
        "_v4",
        "_gelu",
        "_muld",
        "_add",
        "wgrad_16x64",
        "_r8",
      ]
    ) {
      assert.ok(keys.includes(v), `no ${v} among ${keys}`);
    }
    assert.ok([...kernels].some((k) => k.startsWith("rgemm") && !k.includes("_v4")), "a scalar-A product");
    assert.ok(
      [...kernels].some((k) => k.includes("_r8") && k.includes("_spec")),
      "8 rows with the DFT epilogue",
    );
  },
});
