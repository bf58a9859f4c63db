/**
 * `deno task bench step --mpi K`: the training step of one process (all cores, the BLAS's own threads) against K
 * MPI ranks (the cores shared out over them), each in its own process, alternated in one run, with the speed-up
 * and the all-reduce's time and size.
 *
 * @module
 */

import { median } from "./timing.ts";
import { BENCH_RUN, jsonChild } from "./child.ts";
import type { StepReport } from "./step.ts";

/** The step benchmark's flags as arguments for a child run. */
function stepArgs(flags: Record<string, unknown>): string[] {
  const out = ["step", "--json"];
  for (const k of ["points", "batch", "latent", "radius", "backend", "steps", "micro-batch"]) {
    if (flags[k] !== undefined) out.push(`--${k}`, String(flags[k]));
  }
  return out;
}

/** Runs the comparison and prints it (and returns the medians). */
export async function benchStepVsMpi(
  flags: Record<string, unknown>,
  ranks: number,
  launcher: string,
  repeats = 2,
): Promise<{ single: number; mpi: number; speedup: number; allreduce_ms: number; allreduce_bytes: number }> {
  const args = stepArgs(flags);
  const single: number[] = [], mpi: number[] = [], reduce: number[] = [];
  let last: StepReport | undefined;
  for (let i = 0; i < repeats; i++) {
    single.push(((await jsonChild([...BENCH_RUN, ...args])) as StepReport).step_ms);
    last = (await jsonChild([
      ...launcher.split(/\s+/).filter(Boolean),
      "-n",
      String(ranks),
      ...BENCH_RUN,
      ...args,
    ])) as StepReport;
    mpi.push(last.step_ms);
    reduce.push(last.allreduce_ms);
  }
  const r = {
    single: median(single),
    mpi: median(mpi),
    speedup: median(single) / median(mpi),
    allreduce_ms: median(reduce),
    allreduce_bytes: last!.allreduce_bytes,
  };
  console.log(
    `N=${flags.points} B=${flags.batch} latent ${flags.latent}^3 r=${flags.radius}: one process ` +
      `${r.single.toFixed(0)} ms per step; ${ranks} ranks (${launcher}, ${
        last!.blas_threads
      } BLAS thread(s) each) ` +
      `${r.mpi.toFixed(0)} ms, of which all-reduce ${r.allreduce_ms.toFixed(1)} ms ` +
      `(${(r.allreduce_bytes / 2 ** 20).toFixed(1)} MiB); speed-up ${r.speedup.toFixed(2)}x ` +
      `(medians of ${repeats} alternated runs, each the median of its steps)`,
  );
  if (flags.json) console.log(JSON.stringify(r));
  return r;
}
