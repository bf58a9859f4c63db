import assert from "node:assert/strict";
import { PatchBatchSampler } from "../lib/data/sampler.ts";

const counts = [70, 0, 33, 5, 64];

function epoch(s: PatchBatchSampler): [number, number[]][] {
  const out: [number, number[]][] = [];
  for (let b = s.next(); b; b = s.next()) out.push([b.patch, Array.from(b.windows)]);
  return out;
}

Deno.test("every batch holds windows of one patch, and an epoch covers every window exactly once", () => {
  const s = new PatchBatchSampler(counts, { batchSize: 16, seed: 1 });
  assert.equal(s.batchesPerEpoch, 5 + 0 + 3 + 1 + 4);
  for (let e = 0; e < 3; e++) {
    s.beginEpoch();
    const seen = counts.map((c) => new Uint8Array(c));
    for (const [p, w] of epoch(s)) {
      assert.ok(w.length >= 1 && w.length <= 16);
      for (const k of w) seen[p][k]++;
    }
    for (const a of seen) assert.ok(a.every((v) => v === 1));
  }
});

Deno.test("without shuffling, batches are consecutive windows in patch order (the reference batching)", () => {
  const s = new PatchBatchSampler([5, 3], {
    batchSize: 2,
    shuffleWithinBatches: false,
    shufflePatches: false,
  });
  s.beginEpoch();
  assert.deepEqual(epoch(s), [[0, [0, 1]], [0, [2, 3]], [0, [4]], [1, [0, 1]], [1, [2]]]);
});

Deno.test("shuffle-within-batches re-forms batches each epoch; shuffle-patches only reorders them", () => {
  const key = (e: [number, number[]][]) =>
    e.map(([p, w]) => `${p}:${[...w].sort((a, b) => a - b).join(".")}`).sort();
  const a = new PatchBatchSampler(counts, { batchSize: 8, seed: 3 });
  a.beginEpoch();
  const e1 = epoch(a);
  a.beginEpoch();
  const e2 = epoch(a);
  assert.notDeepEqual(key(e1), key(e2));
  const b = new PatchBatchSampler(counts, { batchSize: 8, seed: 3, shuffleWithinBatches: false });
  b.beginEpoch();
  const f1 = epoch(b);
  b.beginEpoch();
  const f2 = epoch(b);
  assert.deepEqual(key(f1), key(f2));
  assert.notDeepEqual(f1.map((x) => x[0]), f2.map((x) => x[0]));
});

Deno.test("the same seed gives the same batches; another seed gives others", () => {
  const run = (seed: number) => {
    const s = new PatchBatchSampler(counts, { batchSize: 8, seed });
    s.beginEpoch();
    const e = epoch(s);
    s.beginEpoch();
    return [...e, ...epoch(s)];
  };
  assert.deepEqual(run(5), run(5));
  assert.notDeepEqual(run(5), run(6));
});

Deno.test("a sampler restored from a mid-epoch state continues with exactly the batches the original would give", () => {
  const a = new PatchBatchSampler(counts, { batchSize: 8, seed: 9 });
  a.beginEpoch();
  epoch(a);
  a.beginEpoch();
  for (let i = 0; i < 5; i++) a.next();
  const saved = JSON.parse(JSON.stringify(a.getState()));
  const restOfEpoch = epoch(a);
  a.beginEpoch();
  const nextEpoch = epoch(a);

  const b = new PatchBatchSampler(counts, { batchSize: 8, seed: 12345 });
  b.setState(saved);
  assert.equal(b.epoch, 2);
  assert.equal(b.position, 5);
  assert.deepEqual(epoch(b), restOfEpoch);
  b.beginEpoch();
  assert.deepEqual(epoch(b), nextEpoch);

  const c = new PatchBatchSampler([70, 0, 33, 5, 63], { batchSize: 8 });
  assert.throws(() => c.setState(saved), /windows per patch/);
});
