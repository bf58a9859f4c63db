/**
 * `deno task bench tta`: training speed as users feel it, time to a target accuracy (MLPerf Training's measure).
 * Each recipe trains on the same data in its own process, as `deno task train` would (validation and checkpoints
 * included), for its own epochs or for a wall-clock budget; the time to target is the wall time from the first
 * step to the end of the first epoch whose validation loss (relative L2, as training reports it) reaches the
 * target. Then `predict` evaluates each recipe's best checkpoint against the baselines: persistence, linear
 * extrapolation and, for a residual model, its fitted base alone. With `--torch`, the reference recipe in PyTorch
 * (`bench/gino_torch_train.py`: the reference model, Adam with ExponentialLR every 5 epochs, batch 32) trains on
 * the same windows with the same normalisation, in the same run.
 *
 * @module
 */

import { BENCH_RUN } from "./child.ts";
import { predict } from "../tools/predict.ts";
import type { PredictReport } from "../tools/predict.ts";
import { loadCheckpoint } from "../train/checkpoint.ts";
import { SETTING_SPECS, settingsFromFlags } from "../train/settings.ts";
import type { TrainSettings } from "../train/settings.ts";
import { train } from "../train/loop.ts";
import { FlagError, parseFlags } from "../cli/flags.ts";
import { ToolError } from "../errors.ts";
import { ensureDemoData } from "../data/demo.ts";

/** A recipe: what it is and its training flags (added to the data and the run's place). */
export interface Recipe {
  /** What it is, for the table. */
  about: string;
  /** Training flags. */
  flags: string[];
}

/** The named recipes of `--recipes`. */
export const RECIPES: Record<string, Recipe> = {
  default: {
    about: "the defaults: model, windows, batch and epochs chosen from the data, cosine schedule",
    flags: [],
  },
  exponential: {
    about:
      "the same model with the reference's batch 32 and exponential schedule (lr 1e-3, x0.95 every 5 epochs)",
    flags: ["--batch-size", "32", "--lr-schedule", "exponential"],
  },
  reference: {
    about: "--reference: the reference's model, output, windows, batch 32 and exponential schedule",
    flags: ["--reference"],
  },
  "reference-cosine": {
    about:
      "the reference model and output with the new recipe: --reference --lr-schedule cosine --batch-size 4",
    flags: ["--reference", "--lr-schedule", "cosine", "--batch-size", "4"],
  },
};

/** What `bench tta` is asked for. */
export interface TtaOptions {
  /** Data folder (undefined: the demo data). */
  data?: string;
  /** Target validation loss. */
  target: number;
  /** Recipes to run, by name. */
  recipes: string[];
  /** Seconds of training per recipe (undefined: each recipe's epochs). */
  budget?: number;
  /** Epochs per recipe (undefined: the recipe's own). */
  epochs?: number;
  /** Run the reference recipe in PyTorch too. */
  torch: boolean;
  /** The Python with torch. */
  python: string;
  /** PyTorch's threads. */
  threads: number;
  /** Print JSON too. */
  json: boolean;
}

/** One recipe's figures. */
export interface TtaResult {
  recipe: string;
  about: string;
  /** Seconds from the first step to the end of the first epoch at or below the target; null: not reached. */
  seconds_to_target: number | null;
  epochs_to_target: number | null;
  steps_to_target: number | null;
  epochs: number;
  steps: number;
  /** Wall time of the whole training, seconds (validation and checkpoints included). */
  seconds: number;
  best_val: number;
  best_epoch: number;
  /** Validation loss after each epoch. */
  val: number[];
  /** RMSE of the best checkpoint and of the baselines on the validation windows (first target column). */
  rmse?: { model: number; persistence: number; linear: number; fitted_base: number | null };
  /** The model's RMSE per lead against the best baseline's (fitted base, or linear extrapolation). */
  rmse_per_lead?: { model: number[]; base: number[] };
}

/** Runs the benchmark (see the module documentation); prints the table, returns the results. */
export async function benchTta(o: TtaOptions): Promise<TtaResult[]> {
  const runs = o.recipes.map(parseRecipe);
  const data = o.data ?? await ensureDemoData();
  const tmp = await Deno.makeTempDir({ prefix: "gino-gw-tta-" });
  const results: TtaResult[] = [];
  try {
    console.log(
      `# bench tta: ${data}${o.data ? "" : " (the demo data)"}, target validation relative L2 ${o.target}, ` +
        (o.budget ? `${o.budget} s of training per recipe` : "each recipe's epochs") +
        ` (deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cpus)`,
    );
    for (const { name, epochs } of runs) {
      const r = RECIPES[name];
      const flags = [
        "--base-data-dir",
        data,
        "--results-dir",
        tmp,
        "--run-name",
        `${name}${epochs ? `-${epochs}` : ""}`,
        "--quiet",
        ...r.flags,
        ...(o.budget ? ["--time-budget", String(o.budget)] : []),
        ...(epochs ?? o.epochs ? ["--epochs", String(epochs ?? o.epochs)] : []),
      ];
      const t0 = performance.now();
      const child = await new Deno.Command(BENCH_RUN[0], {
        args: [...BENCH_RUN.slice(1), "tta", "--train-child", JSON.stringify(flags)],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (child.code !== 0) {
        throw new ToolError(
          `recipe ${name}: training failed (exit ${child.code}): ${
            new TextDecoder().decode(child.stderr).slice(-1500)
          }`,
        );
      }
      const label = `${name}${epochs ? `:${epochs}` : ""}`;
      const res = await resultOf(label, r, `${tmp}/${name}${epochs ? `-${epochs}` : ""}`, o.target);
      console.log(
        `${name}: ${formatResult(res)} (${((performance.now() - t0) / 1000).toFixed(0)} s with start-up)`,
      );
      results.push(res);
    }
    if (o.torch) results.push(await torchRecipe(o, data, tmp, results));
    console.log(formatTable(results, o.target));
    if (o.json) console.log(JSON.stringify({ target: o.target, data, results }));
    return results;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** `name` or `name:epochs` (that recipe for that many epochs). */
export function parseRecipe(text: string): { name: string; epochs?: number } {
  const [name, e] = text.split(":");
  const known = `choose from ${Object.keys(RECIPES).join(", ")}, each optionally with :epochs`;
  if (!RECIPES[name]) throw new FlagError(`--recipes: unknown recipe '${name}'; ${known}`);
  if (e !== undefined && !(Number.isInteger(Number(e)) && Number(e) > 0)) {
    throw new FlagError(`--recipes: '${text}': the epochs after ':' must be a positive integer`);
  }
  return { name, epochs: e === undefined ? undefined : Number(e) };
}

/** The child: trains with the given flags (as `deno task train` would) and exits with its status. */
export async function ttaTrainChild(flagsJson: string): Promise<number> {
  const args = (JSON.parse(flagsJson) as string[]).filter((a) => a !== "--quiet");
  const f = parseFlags(args, [...SETTING_SPECS]);
  const { settings, explicit } = settingsFromFlags(f, f.__explicit);
  return await train(settings, { explicit: [...explicit], quiet: true });
}

/** A recipe's figures from its run folder: history, steps, and `predict` on its best checkpoint. */
async function resultOf(name: string, r: Recipe, dir: string, target: number): Promise<TtaResult> {
  const final = await loadCheckpoint(`${dir}/checkpoints/final_checkpoint.safetensors`);
  const h = final.state.history;
  const val = h.val_losses, secs = h.epoch_seconds;
  const ends = (h.epoch_ends ?? []).map((e) => Date.parse(e) / 1000);
  const start = ends[0] - secs[0];
  const steps = final.state.global_step, perEpoch = steps / val.length;
  const hit = val.findIndex((v) => v <= target);
  let best = 0;
  val.forEach((v, i) => (v < val[best] ? (best = i) : 0));
  const report = await predict({
    checkpoint: `${dir}/checkpoints/best_checkpoint.safetensors`,
    outDir: `${dir}/prediction`,
    csv: false,
    figures: false,
  });
  return {
    recipe: name,
    about: r.about,
    seconds_to_target: hit >= 0 ? ends[hit] - start : null,
    epochs_to_target: hit >= 0 ? hit + 1 : null,
    steps_to_target: hit >= 0 ? Math.round((hit + 1) * perEpoch) : null,
    epochs: val.length,
    steps,
    seconds: ends.at(-1)! - start,
    best_val: val[best],
    best_epoch: best + 1,
    val,
    ...rmseOf(report),
  };
}

function rmseOf(r: PredictReport): Pick<TtaResult, "rmse" | "rmse_per_lead"> {
  const col = r.target_cols[0];
  const base = r.fitted_base ?? r.linear;
  return {
    rmse: {
      model: r.model.overall[col].rmse,
      persistence: r.persistence.overall[col].rmse,
      linear: r.linear.overall[col].rmse,
      fitted_base: r.fitted_base?.overall[col].rmse ?? null,
    },
    rmse_per_lead: {
      model: r.model.per_step[col].map((s) => s.rmse),
      base: base.per_step[col].map((s) => s.rmse),
    },
  };
}

/** The reference recipe in PyTorch on the same windows and normalisation as the toolkit's runs. */
async function torchRecipe(o: TtaOptions, data: string, tmp: string, ours: TtaResult[]): Promise<TtaResult> {
  const run = ours[0] ? `${tmp}/${ours[0].recipe.replace(":", "-")}` : undefined;
  if (!run) {
    throw new FlagError("--torch needs at least one of the toolkit's recipes to take the windows from");
  }
  const cfg = JSON.parse(await Deno.readTextFile(`${run}/config.json`));
  const s: TrainSettings = cfg.settings, n = cfg.normalization;
  const col = ["mass_concentration", "head", "pressure"].indexOf(s.data.targetCols[0]);
  const spec = {
    column: col,
    t_in: s.data.inputWindow,
    t_out: s.data.outputWindow,
    val_ratio: s.data.valRatio,
    batch: 32,
    latent: 32,
    radius: 0.1,
    coord_mean: n.coordMean,
    coord_std: n.coordStd,
    mean: n.mean[0],
    std: n.std[0],
    seed: s.data.seed,
  };
  await Deno.writeTextFile(`${tmp}/torch_spec.json`, JSON.stringify(spec));
  const script = new URL("../../bench/gino_torch_train.py", import.meta.url).pathname;
  const budget = o.budget ?? Math.max(...ours.map((r) => r.seconds));
  const out = await new Deno.Command(o.python, {
    args: [
      script,
      "--patches",
      `${data}/${s.data.patchDataSubdir}`,
      "--spec",
      `${tmp}/torch_spec.json`,
      "--budget",
      String(budget),
      "--threads",
      String(o.threads),
      ...(o.epochs ? ["--epochs", String(o.epochs)] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((e) => {
    throw new ToolError(
      `--torch: could not run ${o.python} (${(e as Error).message}); --python names another`,
    );
  });
  if (out.code !== 0) {
    throw new ToolError(`--torch: ${script} failed: ${new TextDecoder().decode(out.stderr).slice(-1500)}`);
  }
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n").map((l) => JSON.parse(l));
  const epochs = lines.filter((l) => l.epoch !== undefined);
  const val = epochs.map((l) => l.val_loss as number);
  const hit = val.findIndex((v) => v <= o.target);
  let best = 0;
  val.forEach((v, i) => (v < val[best] ? (best = i) : 0));
  const res: TtaResult = {
    recipe: "torch-reference",
    about: `PyTorch ${
      lines.at(-1).torch
    }: the reference model and recipe (Adam, ExponentialLR every 5 epochs, batch 32)`,
    seconds_to_target: hit >= 0 ? epochs[hit].seconds : null,
    epochs_to_target: hit >= 0 ? hit + 1 : null,
    steps_to_target: null,
    epochs: val.length,
    steps: lines.at(-1).steps ?? 0,
    seconds: epochs.at(-1)?.seconds ?? 0,
    best_val: val[best],
    best_epoch: best + 1,
    val,
  };
  console.log(`torch-reference: ${formatResult(res)}`);
  return res;
}

const sec = (v: number | null) => (v === null ? "not reached" : `${v.toFixed(1)} s`);

function formatResult(r: TtaResult): string {
  return `to target ${sec(r.seconds_to_target)}${
    r.epochs_to_target ? ` (epoch ${r.epochs_to_target}, step ${r.steps_to_target ?? "-"})` : ""
  }; best validation ${r.best_val.toPrecision(4)} at epoch ${r.best_epoch} of ${r.epochs}; ${
    r.seconds.toFixed(1)
  } s of training`;
}

function formatTable(results: TtaResult[], target: number): string {
  const head = [
    "recipe",
    `time to ${target}`,
    "epochs",
    "steps",
    "best val (epoch)",
    "training",
    "RMSE model",
    "persistence",
    "linear",
    "fitted base",
  ];
  const f = (v: number | null | undefined) => (v === null || v === undefined ? "-" : v.toPrecision(3));
  const rows = results.map((r) => [
    r.recipe,
    sec(r.seconds_to_target),
    r.epochs_to_target === null ? `- of ${r.epochs}` : `${r.epochs_to_target} of ${r.epochs}`,
    r.steps_to_target === null ? "-" : String(r.steps_to_target),
    `${r.best_val.toPrecision(4)} (${r.best_epoch})`,
    `${r.seconds.toFixed(1)} s`,
    f(r.rmse?.model),
    f(r.rmse?.persistence),
    f(r.rmse?.linear),
    f(r.rmse?.fitted_base),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join("  ");
  const leads = results.filter((r) => r.rmse_per_lead).map((r) =>
    `${r.recipe}: RMSE per lead, model ${r.rmse_per_lead!.model.map((v) => v.toPrecision(2)).join(" ")}; ` +
    `base ${r.rmse_per_lead!.base.map((v) => v.toPrecision(2)).join(" ")}`
  );
  return [line(head), ...rows.map(line), ...leads].join("\n");
}
