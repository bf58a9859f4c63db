/**
 * `deno task bench <name>`: benchmarks that print figures.
 *
 * - `data`: sampler, batch assembly, dataset memory, CSV ingest and `prepare`, each next to a simple baseline
 *   measured in the same run (ratios are what to compare; absolute times on shared machines are noisy).
 * - `mf6`: preparing a MODFLOW 6 model of a million cells and a thousand saved steps (time, rates, peak memory).
 * - `gemm`: the GPU engine's matrix products at the shapes of a training step (`--backend webgpu`, `--case`):
 *   GPU time, GFLOP/s, GB/s and error of each, beside the CPU path's product (system BLAS) on the same shape.
 * - `step`: one training step of the reference GINO (under `mpiexec -n K`: data-parallel over the ranks, with the
 *   all-reduce's time and size); `--mpi K` runs one process and K ranks alternately and gives the speed-up.
 * - `tta`: time to a target validation loss of training recipes on a data set (the demo data by default), each
 *   recipe's best checkpoint against persistence, linear extrapolation and the fitted base; `--torch` adds the
 *   reference recipe in PyTorch on the same data.
 *
 * @module
 */

import { FlagError, formatHelp, parseFlags, positive, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { runMain } from "./lib/cli/main.ts";
import { backendCheck } from "./lib/train/settings.ts";
import { benchAssembly, benchCsv, benchPrepare, benchSampler } from "./lib/bench/data.ts";
import { benchStep } from "./lib/bench/step.ts";
import { benchGemm } from "./lib/bench/gemm.ts";
import { benchStepVsMpi } from "./lib/bench/mpi.ts";
import { benchStepVsTorch, STEP_CASES } from "./lib/bench/torch.ts";
import type { StepCase } from "./lib/bench/torch.ts";
import { initWorld } from "./lib/parallel/world.ts";
import { benchMf6, prepareMf6Child } from "./lib/bench/mf6.ts";
import { benchTta, parseRecipe, RECIPES, ttaTrainChild } from "./lib/bench/tta.ts";
import { parseDuration } from "./lib/train/settings.ts";

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
    name: "patches",
    type: "int",
    default: 1,
    help: "step: patches of the case's size, each its own points; the steps go round them after a first pass",
    check: positiveInt,
  },
  {
    name: "log-every",
    type: "int",
    help:
      "step, GPU engine: read the queued steps' losses every N steps (default: about once a second, as training)",
    check: positiveInt,
  },
  {
    name: "mpi",
    type: "int",
    help: "step: compare one process with this many MPI ranks (each run in its own process)",
    check: (v: number) => (v >= 2 ? undefined : `must be at least 2, got ${v}`),
  },
  { name: "launcher", type: "string", default: "mpiexec", help: "step --mpi: the MPI launcher command" },
  {
    name: "profile",
    type: "boolean",
    default: false,
    help:
      "step: time per model part, forward and backward, host overhead and matmul rate (slows the step a little)",
  },
  {
    name: "torch",
    type: "boolean",
    default: false,
    help: "step: compare with the same step in PyTorch (bench/gino_torch.py), alternated in one run",
  },
  {
    name: "case",
    type: "list",
    help: `step: named cases instead of --points/--batch/--latent/--radius: ${
      Object.keys(STEP_CASES).join(", ")
    }`,
    check: (v: string[]) =>
      v.every((c) => c in STEP_CASES)
        ? undefined
        : `choose from ${Object.keys(STEP_CASES).join(", ")}; got '${v.join(",")}'`,
  },
  {
    name: "python",
    type: "string",
    default: "/usr/bin/python3",
    help: "step --torch: the Python with torch",
  },
  {
    name: "threads",
    type: "int",
    default: 2,
    help: "step --torch: threads of each side",
    check: positiveInt,
  },
  {
    name: "device",
    type: "string",
    default: "cpu",
    help: "step --torch: PyTorch's device, cpu or cuda (with --backend webgpu: both sides on the same GPU)",
    check: (v: string) => (v === "cpu" || v === "cuda" ? undefined : `choose cpu or cuda, got '${v}'`),
  },
  {
    name: "repeats",
    type: "int",
    default: 2,
    help: "step --torch, --mpi: alternated runs; gemm: timed runs of each product",
    check: positiveInt,
  },
  {
    name: "cells",
    type: "int",
    default: 1000000,
    help: "mf6: cells of the generated MODFLOW 6 model",
    check: positiveInt,
  },
  {
    name: "mf6-steps",
    type: "int",
    default: 1000,
    help: "mf6: saved time steps of the generated model",
    check: positiveInt,
  },
  {
    name: "prepare-dir",
    type: "string",
    help: "mf6: prepare the model in this folder (the benchmark's child process)",
  },
  {
    name: "base-data-dir",
    type: "string",
    help: "tta: the data folder (its patch folder filter_patch; default: the built-in demo data)",
  },
  {
    name: "target",
    type: "number",
    default: 0.015,
    help: "tta: the target validation loss (relative L2, as training reports it)",
    check: positive,
  },
  {
    name: "recipes",
    type: "list",
    default: ["default", "exponential"],
    help: `tta: recipes to run, each optionally with :epochs (e.g. exponential:40): ${
      Object.keys(RECIPES).join(", ")
    }`,
    check: (v: string[]) => {
      try {
        v.forEach(parseRecipe);
        return undefined;
      } catch (e) {
        return (e as Error).message.replace(/^--recipes: /, "");
      }
    },
  },
  {
    name: "budget",
    type: "string",
    help: "tta: train each recipe for this much time (e.g. 45s, 5m; default: each recipe's epochs)",
    check: (v: string) => (parseDuration(v) ? undefined : `expected a duration like 45s or 5m, got '${v}'`),
  },
  {
    name: "epochs",
    type: "int",
    help: "tta: epochs of each recipe (default: the recipe's own)",
    check: positiveInt,
  },
  {
    name: "train-child",
    type: "string",
    help: "tta: train with these flags (the benchmark's child process)",
  },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

const USAGE =
  `Usage: deno task bench tta [--base-data-dir DIR] [--target 0.015] [--recipes default,exponential]
                           [--budget 5m | --epochs N] [--torch [--python P --threads T]] [--json]
       deno task bench data [--only sampler,assembly,csv,prepare] [--json]
       deno task bench mf6 [--cells 1000000 --mf6-steps 1000] [--json]
       deno task bench gemm --backend webgpu [--case small,dense,large,real --repeats R] [--json]
       deno task bench step [--points N --batch B --latent G --radius R | --case small,dense,large,real]
                            [--backend X --micro-batch M --patches P --log-every K --profile --torch
                             [--device cuda] --mpi K --json]`;

async function main(): Promise<number> {
  const flags = parseFlags(Deno.args, BENCH_FLAGS);
  if (flags.help) {
    console.log(formatHelp(USAGE, BENCH_FLAGS));
    return 0;
  }
  const [what, ...extra] = flags._;
  if (!["data", "step", "mf6", "gemm", "tta"].includes(what as string)) {
    throw new FlagError(
      what
        ? `unknown benchmark '${what}': choose tta, data, step, gemm or mf6`
        : `name a benchmark: tta, data, step, gemm or mf6\n${USAGE}`,
    );
  }
  if (extra.length) throw new FlagError(`unexpected argument(s): ${extra.join(" ")} (see --help)`);
  if (what === "tta") {
    if (flags["train-child"]) return await ttaTrainChild(flags["train-child"] as string);
    await benchTta({
      data: flags["base-data-dir"] as string | undefined,
      target: flags.target as number,
      recipes: flags.recipes as string[],
      budget: flags.budget ? parseDuration(flags.budget as string) : undefined,
      epochs: flags.epochs as number | undefined,
      torch: flags.torch as boolean,
      python: flags.python as string,
      threads: flags.threads as number,
      json: flags.json as boolean,
    });
    return 0;
  }
  if (what === "mf6") {
    if (flags["prepare-dir"]) await prepareMf6Child(flags["prepare-dir"] as string);
    else {await benchMf6({
        cells: flags.cells as number,
        steps: flags["mf6-steps"] as number,
        json: flags.json as boolean,
      });}
    return 0;
  }
  if (what === "gemm") {
    const cases = (flags.case as string[] | undefined)?.map((c) => STEP_CASES[c]) ?? [STEP_CASES.small];
    await benchGemm(cases, {
      backend: flags.backend as string,
      repeats: flags.repeats as number,
      json: flags.json as boolean,
    });
    return 0;
  }
  if (what === "step") {
    const cases = (flags.case as string[] | undefined)?.map((c) => STEP_CASES[c]);
    if (flags.torch) {
      await benchStepVsTorch(cases ?? [caseOf(flags)], {
        python: flags.python as string,
        threads: flags.threads as number,
        steps: flags.steps as number,
        repeats: flags.repeats as number,
        backend: flags.backend as string,
        json: flags.json as boolean,
        device: flags.device as string,
        profile: flags.profile as boolean,
      });
    } else if (flags.mpi) {
      for (const c of cases ?? [caseOf(flags)]) {
        await benchStepVsMpi(
          { ...flags, ...c },
          flags.mpi as number,
          flags.launcher as string,
          flags.repeats as number,
        );
      }
    } else if (cases) {
      for (const c of cases) await benchStep({ ...flags, ...c }, initWorld());
    } else await benchStep(flags, initWorld()); // under mpiexec: data-parallel over its ranks
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

function caseOf(flags: Record<string, unknown>): StepCase {
  return {
    name: "given",
    points: flags.points as number,
    batch: flags.batch as number,
    latent: flags.latent as number,
    radius: flags.radius as number,
  };
}

if (import.meta.main) await runMain(main);
