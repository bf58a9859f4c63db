/**
 * `deno task bench <name>`: benchmarks that print figures.
 *
 * - `data`: sampler, batch assembly, dataset memory, CSV ingest and `prepare`, each next to a simple baseline
 *   measured in the same run (ratios are what to compare; absolute times on shared machines are noisy).
 *
 * @module
 */

import { FlagError, formatHelp, parseFlags, positive, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { runMain } from "./lib/cli/main.ts";
import { backendCheck } from "./lib/train/settings.ts";
import { readNumericCsv } from "./lib/io/csv.ts";
import { writeNpy } from "./lib/io/npy.ts";
import { loadPatchDataset } from "./lib/data/dataset.ts";
import { PatchBatchSampler } from "./lib/data/sampler.ts";
import { BatchAssembler } from "./lib/data/batch.ts";
import { preparePatches } from "./lib/data/prepare.ts";
import { Rng } from "./lib/data/rng.ts";
import { initBackend, tf } from "./lib/model/backend.ts";
import type { BackendName } from "./lib/model/backend.ts";
import { createGino } from "./lib/model/gino.ts";
import { REFERENCE_GINO } from "./lib/model/config.ts";
import { autoMicroBatch, trainStep } from "./lib/train/step.ts";
import { latentGrid } from "./lib/model/latent.ts";
import { Adam } from "./lib/train/adam.ts";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function time(fn: () => void, repeats: number): number {
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

async function timeAsync(fn: () => Promise<unknown>, repeats: number): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

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

function benchSampler(out: Record<string, unknown>) {
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

async function benchAssembly(tmp: string, out: Record<string, unknown>) {
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

async function benchCsv(tmp: string, out: Record<string, unknown>) {
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

async function benchPrepare(tmp: string, out: Record<string, unknown>) {
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
async function benchStep(flags: Record<string, unknown>) {
  const N = flags.points as number,
    B = flags.batch as number,
    G = flags.latent as number,
    r = flags.radius as number;
  const steps = flags.steps as number;
  const info = await initBackend(flags.backend as BackendName);
  const rng = new Rng(1);
  const raw = Float64Array.from({ length: N * 3 }, () => rng.next());
  // standardise per axis (ddof = 1)
  const pts = new Float32Array(N * 3);
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  for (let a = 0; a < 3; a++) {
    let s = 0, s2 = 0;
    for (let i = 0; i < N; i++) s += raw[i * 3 + a];
    const mean = s / N;
    for (let i = 0; i < N; i++) s2 += (raw[i * 3 + a] - mean) ** 2;
    const std = Math.sqrt(s2 / (N - 1));
    for (let i = 0; i < N; i++) {
      const v = (pts[i * 3 + a] = (raw[i * 3 + a] - mean) / std);
      lo[a] = Math.min(lo[a], v);
      hi[a] = Math.max(hi[a], v);
    }
  }
  const latent = latentGrid(pts, [G, G, G]);
  const model = createGino({ ...REFERENCE_GINO, in_gno_radius: r, out_gno_radius: r });
  const t0 = performance.now();
  const geom = model.geometry(pts, latent, [G, G, G]);
  const geomMs = performance.now() - t0;
  const micro = (flags["micro-batch"] as number | undefined) ??
    autoMicroBatch([{ n: N, edges: geom.stats.in.edges + geom.stats.out.edges }], [G, G, G], 64, B);
  const x = tf.randomNormal([B, N, 10]) as tf.Tensor3D, y = tf.randomNormal([B, N, 10]) as tf.Tensor3D;
  const opt = new Adam(model.variables, 1e-3);
  let peak = 0;
  const stepTimes: number[] = [], fwdTimes: number[] = [];
  for (let s = 0; s < steps + 1; s++) {
    const ts = performance.now();
    for (let s0 = 0; s0 < B; s0 += micro) {
      // forward of the whole batch, micro-batch by micro-batch
      tf.tidy(() =>
        model.forwardGeometry(geom, x.slice([s0, 0, 0], [Math.min(micro, B - s0), -1, -1])).dataSync()
      );
    }
    const tf0 = performance.now() - ts;
    const t1 = performance.now();
    trainStep(model, geom, x, y, N, micro, opt);
    const dt = performance.now() - t1;
    peak = Math.max(peak, Deno.memoryUsage().rss);
    if (s > 0) {
      stepTimes.push(dt);
      fwdTimes.push(tf0);
    }
  }
  const res = {
    backend: info.backend,
    blas: info.kernels?.blas ?? null,
    points: N,
    batch: B,
    micro_batch: micro,
    latent: G,
    radius: r,
    edges_in: geom.stats.in.edges,
    edges_out: geom.stats.out.edges,
    empty_latent_share: geom.stats.in.emptyShare,
    empty_point_share: geom.stats.out.emptyShare,
    geometry_ms: geomMs,
    step_ms: median(stepTimes),
    forward_ms: median(fwdTimes),
    peak_rss_mb: peak / 2 ** 20,
    parameters: model.parameterCount,
  };
  if (flags.json) console.log(JSON.stringify(res));
  else {
    console.log(
      `backend ${res.backend}${res.blas ? ` + BLAS ${res.blas}` : ""}; N=${N} B=${B}${
        micro < B ? ` (micro-batches of ${micro})` : ""
      } ` +
        `latent ${G}^3 r=${r}: edges in ${res.edges_in} / out ${res.edges_out} ` +
        `(empty latent ${(100 * res.empty_latent_share).toFixed(0)}%, empty points ${
          (100 * res.empty_point_share).toFixed(0)
        }%)`,
    );
    console.log(
      `step ${res.step_ms.toFixed(0)} ms (median of ${steps}), forward ${res.forward_ms.toFixed(0)} ms, ` +
        `geometry ${geomMs.toFixed(0)} ms (once per patch), peak RSS ${res.peak_rss_mb.toFixed(0)} MiB`,
    );
  }
  geom.dispose();
  model.dispose();
}

const BENCH_FLAGS: FlagSpec[] = [
  { name: "json", type: "boolean", default: false, help: "also print the figures as JSON" },
  {
    name: "only",
    type: "list",
    help: "data: parts to run: sampler,assembly,csv,prepare",
    check: (v: string[]) =>
      v.every((p) => ["sampler", "assembly", "csv", "prepare"].includes(p))
        ? undefined
        : `choose from sampler, assembly, csv, prepare; got '${v.join(",")}'`,
  },
  { name: "points", type: "int", default: 2000, help: "step: points", check: positiveInt },
  { name: "batch", type: "int", default: 8, help: "step: batch size", check: positiveInt },
  {
    name: "micro-batch",
    type: "int",
    help: "step: micro-batch size (gradient accumulation)",
    check: positiveInt,
  },
  {
    name: "latent",
    type: "int",
    default: 16,
    help: "step: latent grid size per axis",
    check: (v: number) => (v >= 8 ? undefined : `must be at least 8 (the reference's 8 FNO modes), got ${v}`),
  },
  { name: "radius", type: "number", default: 0.1, help: "step: GNO radius", check: positive },
  {
    name: "backend",
    type: "string",
    default: "auto",
    help: "step: backend",
    check: backendCheck,
  },
  { name: "steps", type: "int", default: 3, help: "step: timed steps after one warm-up", check: positiveInt },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

const USAGE = `Usage: deno task bench data [--only sampler,assembly,csv,prepare] [--json]
       deno task bench step [--points N --batch B --latent G --radius R --backend X --micro-batch M --json]`;

async function main(): Promise<number> {
  const flags = parseFlags(Deno.args, BENCH_FLAGS);
  if (flags.help) {
    console.log(formatHelp(USAGE, BENCH_FLAGS));
    return 0;
  }
  const [what, ...extra] = flags._;
  if (what !== "data" && what !== "step") {
    throw new FlagError(
      what ? `unknown benchmark '${what}': choose data or step` : `name a benchmark: data or step\n${USAGE}`,
    );
  }
  if (extra.length) throw new FlagError(`unexpected argument(s): ${extra.join(" ")} (see --help)`);
  if (what === "step") {
    await benchStep(flags);
    return 0;
  }
  const only = flags.only as string[] | undefined;
  const want = (p: string) => !only || only.includes(p);
  const tmp = await Deno.makeTempDir({ prefix: "gino-gw-bench-" });
  const out: Record<string, unknown> = {};
  try {
    console.log(`# bench data (deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cpus)`);
    if (want("sampler")) benchSampler(out);
    if (want("assembly")) await benchAssembly(tmp, out);
    if (want("csv")) await benchCsv(tmp, out);
    if (want("prepare")) await benchPrepare(tmp, out);
    if (flags.json) console.log(JSON.stringify(out));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  return 0;
}

if (import.meta.main) await runMain(main);
