/**
 * `deno task train`: trains a GINO on patch data, with checkpoints, exact resume and walltime-safe stopping.
 * `--dry-run` loads the data as training would, builds the sampler, prints a summary and exits (`--json`: one JSON
 * object on stdout). Exit statuses: 0 done, 2 bad input, 3 stopped resumably (signal or --time-limit), 4 loss
 * became NaN/Inf, 130 second interrupt.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags } from "./lib/cli/flags.ts";
import type { FlagSpec, ParsedFlags } from "./lib/cli/flags.ts";
import { DATA_FLAGS, dataSettings, MODEL_FLAGS, TRAIN_FLAGS, validateTrainSettings } from "./lib/train/settings.ts";
import { loadPatchDataset } from "./lib/data/dataset.ts";
import { PatchBatchSampler } from "./lib/data/sampler.ts";
import { formatSummary, summarizeDataset } from "./lib/data/summary.ts";
import { DEMO_DIR, ensureDemoData } from "./lib/data/demo.ts";
import { planResume, train } from "./lib/train/loop.ts";

const FLAGS: FlagSpec[] = [
  ...DATA_FLAGS,
  ...TRAIN_FLAGS,
  ...MODEL_FLAGS,
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
  { name: "quiet", type: "boolean", default: false, help: "log to train.log only" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

const USAGE = `Usage: deno task train [flags]

Trains a GINO on the patch data in <base-data-dir>/<patch-data-subdir> (without --base-data-dir: the built-in demo
data set, generated on first use). Writes <results-dir>/<run-name>/: config.json, checkpoints/, loss_history.json,
training_curves.html/.png, train.log, metrics.jsonl. Resume with --resume-from auto (or a checkpoint path);
--epochs is the total target. Exit status: 0 done, 2 bad input, 3 stopped before the end with a resumable
checkpoint (SIGTERM/SIGINT or --time-limit), 4 loss became NaN/Inf, 130 second Ctrl-C.`;

async function dryRun(flags: ParsedFlags): Promise<number> {
  validateTrainSettings(flags);
  const quietLog = { info: (m: string) => console.error(m), warn: (m: string) => console.error(m) };
  const plan = await planResume(flags, flags.__explicit, quietLog);
  const data = dataSettings(plan.settings as ParsedFlags);
  if (!data.baseDataDir) data.baseDataDir = await ensureDemoData(DEMO_DIR, (m) => console.error(m));
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
  const c = plan.checkpoint;
  const resume = c
    ? { checkpoint: c.path, epoch: c.state.epoch, step_in_epoch: c.state.step_in_epoch }
    : null;
  const summary = { ...summarizeDataset(ds, data.batchSize), resume };
  if (flags.json) console.log(JSON.stringify(summary));
  else {
    console.log(formatSummary(summary));
    if (flags["resume-from"]) {
      console.log(
        resume
          ? `would resume ${resume.checkpoint} (epoch ${resume.epoch}${
            resume.step_in_epoch ? ` + ${resume.step_in_epoch} batches` : ""
          })`
          : "would start a new run (no checkpoint to resume)",
      );
    }
  }
  return 0;
}

async function main(args: string[]): Promise<number> {
  let flags = parseFlags(args, FLAGS);
  if (flags._.length) {
    throw new FlagError(
      `unexpected argument(s): ${flags._.join(" ")} (every setting is a --flag; see --help)`,
    );
  }
  if (flags.help) {
    console.log(formatHelp(USAGE, FLAGS));
    return 0;
  }
  if (flags.config) {
    let base: Record<string, unknown>;
    try {
      base = JSON.parse(await Deno.readTextFile(flags.config as string));
    } catch (e) {
      throw new FlagError(`--config ${flags.config}: ${(e as Error).message}`);
    }
    const explicit = flags.__explicit;
    flags = parseFlags(args, FLAGS, base);
    // settings from the config file count as given
    flags.__explicit = [...new Set([...explicit, ...Object.keys(base).map((k) => k.replaceAll("_", "-"))])];
  }
  if (flags["dry-run"]) return await dryRun(flags);
  return await train(flags, flags.__explicit, { quiet: flags.quiet as boolean });
}

if (import.meta.main) await runMain(() => main(Deno.args));
