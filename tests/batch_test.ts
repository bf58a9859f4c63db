import assert from "node:assert/strict";
import { loadPatchDataset } from "../lib/data/dataset.ts";
import { PatchBatchSampler } from "../lib/data/sampler.ts";
import { BatchAssembler } from "../lib/data/batch.ts";
import { FIXTURES } from "./_helpers.ts";

Deno.test("BatchAssembler writes [B, N, C*Tin] inputs and [B, N, C*Tout] targets from the windows' steps", async () => {
  const ds = await loadPatchDataset(`${FIXTURES}py_patches/filter_patch`, {
    targetCols: ["head", "pressure"],
    inputWindow: 4,
    outputWindow: 3,
  });
  const sampler = new PatchBatchSampler(ds.windowCounts("val"), { batchSize: 4, seed: 2 });
  const asm = new BatchAssembler(ds, 4);
  sampler.beginEpoch();
  let batches = 0;
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const b = asm.assemble("val", sb);
    const p = ds.patches[sb.patch];
    assert.equal(b.n, p.n);
    assert.equal(b.nCore, p.nCore);
    assert.equal(b.inputs.length, b.b * p.n * 2 * 4);
    assert.equal(b.targets.length, b.b * p.n * 2 * 3);
    assert.equal(b.coords, p.coords);
    for (let i = 0; i < b.b; i++) {
      const t0 = b.starts[i];
      assert.equal(t0, p.trainSteps + sb.windows[i]);
      for (const n of [0, p.nCore - 1, p.n - 1]) {
        for (let c = 0; c < 2; c++) {
          for (let k = 0; k < 4; k++) {
            assert.equal(b.inputs[(i * p.n + n) * 8 + c * 4 + k], p.values[(c * p.n + n) * p.steps + t0 + k]);
          }
          for (let k = 0; k < 3; k++) {
            assert.equal(
              b.targets[(i * p.n + n) * 6 + c * 3 + k],
              p.values[(c * p.n + n) * p.steps + t0 + 4 + k],
            );
          }
        }
      }
    }
    batches++;
  }
  assert.equal(batches, sampler.batchesPerEpoch);
});
