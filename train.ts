/**
 * `deno task train`: trains a GINO on patch data. `--dry-run` loads the data as training would, builds the
 * sampler, prints a summary and exits (`--json`: one JSON object on stdout).
 *
 * @module
 */

import { FlagError, formatHelp, parseFlags } from "./lib/cli.ts";
import type { FlagSpec } from "./lib/cli.ts";
import { DATA_FLAGS, dataSettings } from "./lib/options.ts";
import { DataError, loadPatchDataset } from "./lib/dataset.ts";
import { PatchBatchSampler } from "./lib/sampler.ts";
import { formatSummary, summarizeDataset } from "./lib/summary.ts";
import { CsvError } from "./lib/csv.ts";
import { NpyError } from "./lib/npy.ts";
import { DEMO_DIR, ensureDemoData } from "./lib/demo.ts";

const FLAGS: FlagSpec[] = [
  ...DATA_FLAGS,
  {
    name: "config",
    type: "string",
    help: "JSON file with settings (same keys as the flags); flags override it",
  },
  {
    name: "dry-run",
    type: "boolean",
    default: false,
    help: "load the data, build the sampler, print a summary, exit",
  },
  { name: "json", type: "boolean", default: false, help: "print the dry run's summary as one JSON object" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

async function main(args: string[]): Promise<number> {
  let flags = parseFlags(args, FLAGS);
  if (flags.help) {
    console.log(formatHelp("Usage: deno task train [flags]", FLAGS));
    return 0;
  }
  if (flags.config) {
    let base: Record<string, unknown>;
    try {
      base = JSON.parse(await Deno.readTextFile(flags.config as string));
    } catch (e) {
      throw new FlagError(`--config ${flags.config}: ${(e as Error).message}`);
    }
    flags = parseFlags(args, FLAGS, base);
  }
  const data = dataSettings(flags);
  if (!data.baseDataDir) {
    // no data given: the built-in demo data set, generated and prepared on first use
    data.baseDataDir = await ensureDemoData(DEMO_DIR, (m) => console.error(m));
  }
  if (!flags["dry-run"]) {
    throw new FlagError("training is not available in this version; use --dry-run to check the data");
  }
  const dir = `${data.baseDataDir}/${data.patchDataSubdir}`;
  const ds = await loadPatchDataset(dir, {
    targetCols: data.targetCols,
    inputWindow: data.inputWindow,
    outputWindow: data.outputWindow,
    stride: data.stride,
    valRatio: data.valRatio,
    nanPolicy: data.nanPolicy,
  });
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), {
    batchSize: data.batchSize,
    shuffleWithinBatches: data.shuffleWithinBatches,
    shufflePatches: data.shufflePatches,
    seed: data.seed,
  });
  sampler.beginEpoch();
  const summary = summarizeDataset(ds, data.batchSize);
  if (flags.json) console.log(JSON.stringify(summary));
  else console.log(formatSummary(summary));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    if (e instanceof FlagError || e instanceof DataError || e instanceof CsvError || e instanceof NpyError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    throw e;
  }
}
