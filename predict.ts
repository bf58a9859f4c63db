/**
 * `deno task predict --checkpoint PATH`: runs a trained model on the validation windows (or another part or data
 * folder), writes metrics against persistence and linear-extrapolation baselines, prediction CSVs and figures.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { formatReport, predict } from "./lib/tools/predict.ts";
import { preparePatches } from "./lib/data/prepare.ts";
import { runFolderForCheckpoint } from "./lib/train/layout.ts";
import { backendCheck } from "./lib/train/settings.ts";
import { loadCheckpoint } from "./lib/train/checkpoint.ts";
import type { BackendName } from "./lib/model/backend.ts";

const FLAGS: FlagSpec[] = [
  { name: "checkpoint", type: "string", help: "the checkpoint to evaluate (required)" },
  { name: "base-data-dir", type: "string", help: "data folder (default: the checkpoint's)" },
  { name: "patch-data-subdir", type: "string", help: "patch subfolder (default: the checkpoint's)" },
  {
    name: "raw-dir",
    type: "string",
    help: "a raw CSV folder: prepared into patches (in --out) and evaluated",
  },
  {
    name: "part",
    type: "string",
    default: "val",
    help: "windows of: val, train or all",
    check: (
      v: string,
    ) => (["val", "train", "all"].includes(v) ? undefined : `expected val, train or all, got '${v}'`),
  },
  {
    name: "rollout",
    type: "int",
    default: 1,
    help: "output windows chained autoregressively",
    check: positiveInt,
  },
  {
    name: "batch-size",
    type: "int",
    help: "windows per forward pass (default: the training batch size)",
    check: positiveInt,
  },
  {
    name: "backend",
    type: "string",
    default: "auto",
    help: "auto, tensorflow, webgpu, wasm or cpu",
    check: backendCheck,
  },
  { name: "out", type: "string", help: "output folder (default <run>/predictions_<checkpoint>)" },
  { name: "csv", type: "boolean", default: true, help: "write one CSV per predicted time step" },
  { name: "figures", type: "boolean", default: true, help: "write PNG figures" },
  {
    name: "vtu",
    type: "boolean",
    default: false,
    help: "write one ParaView .vtu per predicted time step and prediction.pvd (MODFLOW 6 data: its cells)",
  },
  { name: "map-steps", type: "intlist", help: "time steps of the cross-section maps (demo data)" },
  { name: "json", type: "boolean", default: false, help: "print metrics.json instead of the table" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, FLAGS);
    if (f.help) {
      console.log(formatHelp("Usage: deno task predict PATH [flags]   (or --checkpoint PATH)", FLAGS));
      Deno.exit(0);
    }
    if (f._.length > 1 || (f._.length === 1 && f.checkpoint)) {
      throw new FlagError(
        `unexpected argument(s): ${f._.join(" ")} (give the checkpoint once: PATH or --checkpoint PATH)`,
      );
    }
    const ckpt = (f.checkpoint as string | undefined) ?? f._[0];
    if (!ckpt) throw new FlagError("a checkpoint is required: deno task predict PATH (or --checkpoint PATH)");
    const name = ckpt.split("/").pop()!.replace(/\.safetensors$/, "");
    const runDir = await runFolderForCheckpoint(ckpt, (await loadCheckpoint(ckpt)).state) ??
      (ckpt.includes("/") ? ckpt.slice(0, ckpt.lastIndexOf("/")) : ".");
    const outDir = (f.out as string | undefined) ?? `${runDir}/predictions_${name}`;
    let base = f["base-data-dir"] as string | undefined;
    let sub = f["patch-data-subdir"] as string | undefined;
    if (f["raw-dir"]) {
      base = `${outDir}/data`;
      sub = "filter_patch";
      await preparePatches({
        rawDir: f["raw-dir"] as string,
        outDir: `${base}/${sub}`,
        force: true,
        log: (m) => console.error(m),
      });
    }
    const report = await predict({
      checkpoint: ckpt,
      baseDataDir: base,
      patchDataSubdir: sub,
      part: f.part as "val" | "train" | "all",
      rollout: f.rollout as number,
      batchSize: f["batch-size"] as number | undefined,
      backend: f.backend as BackendName,
      outDir,
      csv: f.csv as boolean,
      figures: f.figures as boolean,
      vtu: f.vtu as boolean,
      mapSteps: f["map-steps"] as number[] | undefined,
      log: (m) => console.error(m),
    });
    if (f.json) console.log(JSON.stringify(report));
    else {
      console.log(formatReport(report));
      console.log(
        `\nwrote ${outDir}/metrics.json, ${report.csv_files} CSV files in ${outDir}/predictions/, ${report.figures.length} figures` +
          (report.vtu_files ? `, ${report.vtu_files} ParaView files listed in ${outDir}/prediction.pvd` : ""),
      );
    }
    return 0;
  });
}
