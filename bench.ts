/**
 * `deno task bench <name>`: benchmarks that print figures.
 *
 * - `data`: sampler, batch assembly, dataset memory, CSV ingest and `prepare`, each next to a simple baseline
 *   measured in the same run (ratios are what to compare; absolute times on shared machines are noisy).
 * - `step`: one training step of the reference GINO (under `mpiexec -n K`: data-parallel over the ranks, with the
 *   all-reduce's time and size); `--mpi K` runs one process and K ranks alternately and gives the speed-up.
 *
 * @module
 */

import { FlagError, formatHelp, parseFlags, positive, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { runMain } from "./lib/cli/main.ts";
import { backendCheck } from "./lib/train/settings.ts";
import { benchAssembly, benchCsv, benchPrepare, benchSampler } from "./lib/bench/data.ts";
import { benchStep } from "./lib/bench/step.ts";
import { benchStepVsMpi } from "./lib/bench/mpi.ts";
import { initWorld } from "./lib/parallel/world.ts";

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
  {
    name: "mpi",
    type: "int",
    help: "step: compare one process with this many MPI ranks (each run in its own process)",
    check: (v: number) => (v >= 2 ? undefined : `must be at least 2, got ${v}`),
  },
  { name: "launcher", type: "string", default: "mpiexec", help: "step --mpi: the MPI launcher command" },
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
    if (flags.mpi) await benchStepVsMpi(flags, flags.mpi as number, flags.launcher as string);
    else await benchStep(flags, initWorld()); // under mpiexec: data-parallel over its ranks
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
