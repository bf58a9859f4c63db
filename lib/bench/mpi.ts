/**
 * `deno task bench step --mpi K`: the training step of one process (all cores, the BLAS's own threads) against K
 * MPI ranks (the cores shared out over them), each in its own process, alternated in one run, with the speed-up
 * and the all-reduce's time and size.
 *
 * @module
 */

import { median } from "./timing.ts";
import type { StepReport } from "./step.ts";

/** The step benchmark's flags as arguments for a child run. */
function stepArgs(flags: Record<string, unknown>): string[] {
  const out = ["step", "--json"];
  for (const k of ["points", "batch", "latent", "radius", "backend", "steps", "micro-batch"]) {
    if (flags[k] !== undefined) out.push(`--${k}`, String(flags[k]));
  }
  return out;
}

async function child(cmd: string[]): Promise<StepReport> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.trim().split("\n").findLast((l) => l.startsWith("{"));
  if (out.code !== 0 || !line) {
    throw new Error(
      `${cmd.join(" ")} failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
  return JSON.parse(line);
}

/** Runs the comparison and prints it (and returns the medians). */
export async function benchStepVsMpi(
  flags: Record<string, unknown>,
  ranks: number,
  launcher: string,
  repeats = 2,
): Promise<{ single: number; mpi: number; speedup: number; allreduce_ms: number; allreduce_bytes: number }> {
  const script = new URL("../../bench.ts", import.meta.url).pathname;
  const deno = [
    Deno.execPath(),
    "run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    "--allow-ffi",
  ];
  const args = stepArgs(flags);
  const single: number[] = [], mpi: number[] = [], reduce: number[] = [];
  let last: StepReport | undefined;
  for (let i = 0; i < repeats; i++) {
    single.push((await child([...deno, script, ...args])).step_ms);
    last = await child([
      ...launcher.split(/\s+/).filter(Boolean),
      "-n",
      String(ranks),
      ...deno,
      script,
      ...args,
    ]);
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
