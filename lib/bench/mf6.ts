/**
 * `deno task bench mf6`: preparing a large MODFLOW 6 model. Generates a DIS model of `--cells` cells (10 layers of
 * 1000 columns) with `--mf6-steps` saved steps of heads and concentrations in MODFLOW 6's binary layout, then runs
 * `prepare` on it in a child process and reports its time, read and write rates and its peak resident memory: the
 * steps stream through, so memory stays at the geometry and one step, whatever the number of steps.
 *
 * @module
 */

import { disItems, encodeGrb, Mf6OutputWriter } from "../io/mf6.ts";
import { preparePatches } from "../data/prepare.ts";
import { BENCH_RUN, jsonChild } from "./child.ts";
import { peakRssMiB } from "./step.ts";

/** Generates the model (see the module documentation) in `dir`. Returns the bytes written. */
export async function generateMf6Model(dir: string, cells: number, steps: number): Promise<number> {
  const nlay = cells >= 10000 ? 10 : 1, ncol = Math.min(1000, Math.ceil(cells / nlay));
  const nrow = Math.max(1, Math.round(cells / (nlay * ncol)));
  const ncpl = nrow * ncol;
  const top = new Float64Array(ncpl).fill(0);
  const botm = new Float64Array(nlay * ncpl);
  for (let k = 0; k < nlay; k++) botm.fill(-(k + 1) * 5, k * ncpl, (k + 1) * ncpl);
  const grb = encodeGrb(
    "DIS",
    disItems(
      { nlay, nrow, ncol, delr: new Float64Array(ncol).fill(10), delc: new Float64Array(nrow).fill(10) },
      top,
      botm,
    ),
  );
  await Deno.writeFile(`${dir}/big.dis.grb`, grb);
  const hds = await Mf6OutputWriter.create(`${dir}/big.hds`, "HEAD");
  const ucn = await Mf6OutputWriter.create(`${dir}/big.ucn`, "CONCENTRATION");
  const layer = new Float64Array(ncpl);
  for (let s = 1; s <= steps; s++) {
    const totim = s * 0.1;
    for (let k = 0; k < nlay; k++) {
      for (let c = 0; c < ncpl; c++) layer[c] = 10 + Math.sin(0.001 * c + 0.01 * s) - 0.1 * k;
      await hds.record({ kstp: s, kper: 1, pertim: totim, totim, ncol, nrow, ilay: k + 1 }, layer);
      for (let c = 0; c < ncpl; c++) {
        layer[c] = 35 / (1 + Math.exp(0.01 * ((c % ncol) - 5 * s / steps * ncol / 10)));
      }
      await ucn.record({ kstp: s, kper: 1, pertim: totim, totim, ncol, nrow, ilay: k + 1 }, layer);
    }
  }
  await hds.close();
  await ucn.close();
  return grb.length + 2 * steps * nlay * (52 + 8 * ncpl);
}

/** The child's part: prepare the model in `dir` and print JSON (seconds, peak RSS). */
export async function prepareMf6Child(dir: string): Promise<void> {
  const t0 = performance.now();
  const r = await preparePatches({
    rawDir: "",
    outDir: `${dir}/filter_patch`,
    mf6: { grid: `${dir}/big.dis.grb`, heads: `${dir}/big.hds`, conc: `${dir}/big.ucn` },
  });
  console.log(
    JSON.stringify({
      seconds: (performance.now() - t0) / 1000,
      peak_rss_mb: peakRssMiB(),
      nodes: r.nodes,
      steps: r.steps,
    }),
  );
}

/** Runs the benchmark (see the module documentation). */
export async function benchMf6(
  o: { cells: number; steps: number; json: boolean; dir?: string },
): Promise<void> {
  const dir = o.dir ?? await Deno.makeTempDir({ prefix: "gino-gw-bench-mf6-" });
  try {
    console.log(`# bench mf6: a MODFLOW 6 model of ${o.cells} cells and ${o.steps} saved steps, prepared`);
    const t0 = performance.now();
    const inBytes = await generateMf6Model(dir, o.cells, o.steps);
    const gen = (performance.now() - t0) / 1000;
    console.log(`generated ${(inBytes / 1e9).toFixed(2)} GB of .grb/.hds/.ucn in ${gen.toFixed(1)} s`);
    const r = await jsonChild([...BENCH_RUN, "mf6", "--prepare-dir", dir]) as {
      seconds: number;
      peak_rss_mb: number;
      nodes: number;
      steps: number;
    };
    let outBytes = 0;
    for await (const p of Deno.readDir(`${dir}/filter_patch`)) {
      if (!p.isDirectory) continue;
      for await (const f of Deno.readDir(`${dir}/filter_patch/${p.name}`)) {
        outBytes += (await Deno.stat(`${dir}/filter_patch/${p.name}/${f.name}`)).size;
      }
    }
    const stepMb = (r.nodes * 2 * 8) / 2 ** 20;
    console.log(
      `prepare: ${r.seconds.toFixed(1)} s (${(inBytes / 1e6 / r.seconds).toFixed(0)} MB/s read, ` +
        `${(outBytes / 1e6 / r.seconds).toFixed(0)} MB/s of patch files written: ${
          (outBytes / 1e9).toFixed(2)
        } GB), ` +
        `peak RSS ${r.peak_rss_mb.toFixed(0)} MiB (one step of heads and concentrations is ${
          stepMb.toFixed(0)
        } MiB; ` +
        `all steps would be ${(stepMb * r.steps / 1024).toFixed(1)} GiB)`,
    );
    if (o.json) {
      console.log(
        JSON.stringify({ ...r, generate_seconds: gen, input_bytes: inBytes, output_bytes: outBytes }),
      );
    }
  } finally {
    if (!o.dir) await Deno.remove(dir, { recursive: true });
  }
}
