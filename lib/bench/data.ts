/**
 * `deno task bench data`: sampler, batch assembly, dataset memory, CSV ingest and `prepare`, each next to a simple
 * baseline measured in the same run (ratios are what to compare; absolute times on shared machines are noisy).
 *
 * @module
 */

import { readNumericCsv } from "../io/csv.ts";
import { writeNpy } from "../io/npy.ts";
import { loadPatchDataset } from "../data/dataset.ts";
import { PatchBatchSampler } from "../data/sampler.ts";
import { BatchAssembler } from "../data/batch.ts";
import { preparePatches } from "../data/prepare.ts";
import { Rng } from "../data/rng.ts";
import { time, timeAsync } from "./timing.ts";

/** The reference's way: lists of index lists per patch, chunked once, then reordered each epoch. */
function baselineSampler(counts: number[], batchSize: number, rng: Rng): number[][] {
  const groups = new Map<number, number[]>();
  let idx = 0;
  counts.forEach((c, p) => {
    for (let k = 0; k < c; k++) {
      if (!groups.has(p)) groups.set(p, []);
      groups.get(p)!.push(idx++);
    }
  });
  const batches: number[][] = [];
  for (const g of groups.values()) {
    for (let i = 0; i < g.length; i += batchSize) batches.push(g.slice(i, i + batchSize));
  }
  for (const b of batches) rng.shuffle(b);
  rng.shuffle(batches as unknown as number[]);
  return batches;
}

/** Sampler: creating it and one epoch, against lists of index lists. */
export function benchSampler(out: Record<string, unknown>) {
  console.log("\n## sampler (100 patches, batch 32)");
  for (const total of [1e5, 1e6]) {
    const counts = Array.from({ length: 100 }, () => total / 100);
    const create = time(() => new PatchBatchSampler(counts, { batchSize: 32, seed: 1 }), 7);
    const s = new PatchBatchSampler(counts, { batchSize: 32, seed: 1 });
    const epoch = time(() => {
      s.beginEpoch();
      let n = 0;
      for (let b = s.next(); b; b = s.next()) n += b.windows.length;
      if (n !== total) throw new Error("sampler lost windows");
    }, 7);
    const base = time(() => baselineSampler(counts, 32, new Rng(1)), 5);
    console.log(
      `samples ${total.toExponential(0)}: create ${create.toFixed(2)} ms, epoch ${epoch.toFixed(2)} ms ` +
        `(baseline lists-of-lists create+epoch ${base.toFixed(1)} ms: ${
          (base / (create + epoch)).toFixed(1)
        }x)`,
    );
    out[`sampler_${total}`] = { create_ms: create, epoch_ms: epoch, baseline_ms: base };
  }
}

async function writeSyntheticPatches(dir: string, patches: number, points: number, steps: number) {
  const rng = new Rng(3);
  for (let p = 0; p < patches; p++) {
    const d = `${dir}/patch_${String(p).padStart(4, "0")}`;
    await Deno.mkdir(d, { recursive: true });
    const nc = Math.round(points * 0.8), ng = points - nc;
    for (const [kind, n] of [["core", nc], ["ghost", ng]] as const) {
      const coords = Float64Array.from({ length: n * 3 }, () => rng.next());
      const obs = Float32Array.from({ length: steps * n * 3 }, () => rng.next() * 35);
      await writeNpy(`${d}/${kind}_coords.npy`, [n, 3], coords);
      await writeNpy(`${d}/${kind}_obs.npy`, [steps, n, 3], obs);
    }
  }
}

/** Batch assembly into reusable buffers, against fresh buffers per batch. */
export async function benchAssembly(tmp: string, out: Record<string, unknown>) {
  console.log(
    "\n## batch assembly and dataset memory (20 patches x 3,300 points x 200 steps, windows 10/10, batch 32)",
  );
  const dir = `${tmp}/patches`;
  await writeSyntheticPatches(dir, 20, 3300, 200);
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  const ds = await loadPatchDataset(dir, {
    targetCols: ["mass_concentration"],
    inputWindow: 10,
    outputWindow: 10,
  });
  const loadMs = performance.now() - t0;
  const rss1 = Deno.memoryUsage().rss;
  const selectedRaw = ds.rawBytes / 3; // one of the three observation columns (coords are small)
  console.log(
    `load ${loadMs.toFixed(0)} ms; dataset arrays ${(ds.bytes / 2 ** 20).toFixed(1)} MiB, raw npy arrays ` +
      `${(ds.rawBytes / 2 ** 20).toFixed(1)} MiB (the target column's share ${
        (selectedRaw / 2 ** 20).toFixed(1)
      } MiB): ` +
      `${(ds.bytes / selectedRaw).toFixed(3)}x of the selected raw bytes; RSS grew ${
        ((rss1 - rss0) / 2 ** 20).toFixed(0)
      } MiB`,
  );
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), { batchSize: 32, seed: 1 });
  const asm = new BatchAssembler(ds, 32);
  let batches = 0;
  const tStart = performance.now();
  while (performance.now() - tStart < 3000) {
    sampler.beginEpoch();
    for (let b = sampler.next(); b; b = sampler.next()) {
      asm.assemble("train", b);
      batches++;
    }
  }
  const perSec = batches / ((performance.now() - tStart) / 1000);
  // baseline: a fresh array per batch, filled element by element through index arithmetic on [T, N] data
  const p = ds.patches[0], T = p.steps, N = p.n;
  const tb = performance.now();
  let nb = 0;
  while (performance.now() - tb < 1500) {
    const x = new Float32Array(32 * N * 10), y = new Float32Array(32 * N * 10);
    for (let b = 0; b < 32; b++) {
      for (let n = 0; n < N; n++) {
        for (let i = 0; i < 10; i++) x[(b * N + n) * 10 + i] = p.values[n * T + b + i];
        for (let i = 0; i < 10; i++) y[(b * N + n) * 10 + i] = p.values[n * T + b + 10 + i];
      }
    }
    nb++;
  }
  const basePerSec = nb / ((performance.now() - tb) / 1000);
  console.log(
    `assembly ${perSec.toFixed(0)} batches/s (baseline fresh-buffer assembly ${
      basePerSec.toFixed(0)
    } batches/s: ` +
      `${(perSec / basePerSec).toFixed(2)}x)`,
  );
  out.assembly = { batches_per_s: perSec, baseline_batches_per_s: basePerSec, load_ms: loadMs };
  out.memory = {
    dataset_bytes: ds.bytes,
    raw_bytes: ds.rawBytes,
    ratio_to_selected_raw: ds.bytes / selectedRaw,
  };
}

/** CSV ingest, against splitting lines and cells and `Number()`. */
export async function benchCsv(tmp: string, out: Record<string, unknown>) {
  console.log("\n## CSV ingest (generated ~120 MB file, 8 FEFLOW columns)");
  const path = `${tmp}/big.csv`;
  const rng = new Rng(5);
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  await f.write(enc.encode("node,slice,X,Y,Z,mass_concentration,head,pressure\n"));
  let size = 0;
  for (let block = 0; size < 120e6; block++) {
    const lines: string[] = [];
    for (let i = 0; i < 10000; i++) {
      const node = block * 10000 + i + 1;
      lines.push(
        `${node},${1 + (node % 40)},${(rng.next() * 2000).toFixed(6)},${(rng.next() * 1000).toFixed(6)},` +
          `${(-rng.next() * 50).toFixed(6)},${(rng.next() * 35).toExponential(12)},` +
          `${(1 + rng.next()).toExponential(12)},${(rng.next() * 1e5).toExponential(12)}`,
      );
    }
    const bytes = enc.encode(lines.join("\n") + "\n");
    size += bytes.length;
    await f.write(bytes);
  }
  f.close();
  const mb = (await Deno.stat(path)).size / 1e6;
  const cols = ["node", "slice", "X", "Y", "Z", "mass_concentration", "head", "pressure"];
  await readNumericCsv(path, cols); // warm-up
  const ms = await timeAsync(() => readNumericCsv(path, cols), 3);
  // baseline: whole file as text, split lines and cells, Number() each cell
  const baseMs = await timeAsync(async () => {
    const text = await Deno.readTextFile(path);
    const lines = text.split("\n");
    const colsOut = cols.map(() => new Float64Array(lines.length));
    for (let i = 1; i < lines.length; i++) {
      if (!lines[i]) continue;
      const cells = lines[i].split(",");
      for (let c = 0; c < cells.length; c++) colsOut[c][i - 1] = Number(cells[c]);
    }
  }, 2);
  console.log(
    `${mb.toFixed(0)} MB: ${(mb / (ms / 1000)).toFixed(0)} MB/s (baseline split+Number ` +
      `${(mb / (baseMs / 1000)).toFixed(0)} MB/s: ${(baseMs / ms).toFixed(2)}x)`,
  );
  out.csv = { mb, mb_per_s: mb / (ms / 1000), baseline_mb_per_s: mb / (baseMs / 1000) };
  await Deno.remove(path);
}

/** `prepare` on a large raw folder. */
export async function benchPrepare(tmp: string, out: Record<string, unknown>) {
  console.log("\n## prepare (60,000 nodes, 50 steps, 20 patches)");
  const raw = `${tmp}/raw`;
  await Deno.mkdir(raw);
  const nx = 100, ny = 15, nz = 40; // 60,000 nodes, 40 slices
  const rng = new Rng(9);
  const enc = new TextEncoder();
  let csvBytes = 0;
  for (let t = 0; t < 50; t++) {
    const lines = ["node,slice,X,Y,Z,mass_concentration,head,pressure"];
    let i = 0;
    for (let z = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          i++;
          lines.push(
            `${i},${z + 1},${(x * 10 + rng.next()).toFixed(4)},${(y * 20 + rng.next()).toFixed(4)},${
              -z * 2.5
            },` +
              `${(rng.next() * 35).toExponential(10)},${(1 + rng.next()).toExponential(10)},${
                (rng.next() * 1e5).toExponential(10)
              }`,
          );
        }
      }
    }
    const bytes = enc.encode(lines.join("\n") + "\n");
    csvBytes += bytes.length;
    await Deno.writeFile(`${raw}/${String(t).padStart(4, "0")}.csv`, bytes);
  }
  const res = await preparePatches({ rawDir: raw, outDir: `${tmp}/patches_out` });
  console.log(
    `prepare: ${res.seconds.toFixed(2)} s for ${(csvBytes / 1e6).toFixed(0)} MB of CSV ` +
      `(${res.patches.length} patches, ghost points ${res.patches.reduce((s, p) => s + p.ghost, 0)})`,
  );
  out.prepare = { seconds: res.seconds, csv_mb: csvBytes / 1e6 };
}

/** Training-step benchmark of the reference GINO configuration on uniform points. */
