/**
 * The settings of a training run: flag declarations (shared by `train.ts` and the tools that load the same data)
 * and their translation into typed options.
 *
 * @module
 */

import type { FlagSpec, ParsedFlags } from "./cli.ts";
import { positiveInt } from "./cli.ts";
import { OBS_COLUMNS } from "./dataset.ts";

const inRange01 = (v: number) => (v >= 0 && v < 1 ? undefined : `must be in [0, 1), got ${v}`);
const knownCols = (v: string[]) =>
  v.length === 0
    ? "give at least one column"
    : v.every((c) => (OBS_COLUMNS as readonly string[]).includes(c))
    ? undefined
    : `unknown column in '${v.join(",")}' (choose from: ${OBS_COLUMNS.join(", ")})`;

/** Flags that choose and cut the data (the dry run's flags). */
export const DATA_FLAGS: FlagSpec[] = [
  {
    name: "base-data-dir",
    type: "string",
    help: "data folder holding the raw and patch subfolders (default: built-in demo data)",
  },
  { name: "raw-data-subdir", type: "string", default: "all", help: "raw CSV subfolder" },
  { name: "patch-data-subdir", type: "string", default: "filter_patch", help: "patch subfolder" },
  {
    name: "target-cols",
    type: "list",
    default: ["mass_concentration"],
    aliases: ["target-col"],
    help: "target column(s): mass_concentration, head, pressure",
    check: knownCols,
  },
  { name: "input-window-size", type: "int", default: 10, help: "input steps T_in", check: positiveInt },
  { name: "output-window-size", type: "int", default: 10, help: "output steps T_out", check: positiveInt },
  { name: "window-stride", type: "int", default: 1, help: "steps between window starts", check: positiveInt },
  {
    name: "batch-size",
    type: "int",
    default: 32,
    help: "windows per batch (all of one patch)",
    check: positiveInt,
  },
  {
    name: "val-ratio",
    type: "number",
    default: 0.3,
    help: "share of each patch's steps held out for validation",
    check: inRange01,
  },
  { name: "seed", type: "int", default: 42, help: "seed of every random choice" },
  {
    name: "shuffle-within-batches",
    type: "boolean",
    default: true,
    help: "re-form each patch's batches every epoch",
  },
  {
    name: "shuffle-patches",
    type: "boolean",
    default: true,
    help: "shuffle the order of batches every epoch",
  },
  {
    name: "nan-policy",
    type: "string",
    default: "fail",
    help: "NaN/Inf in the data: fail, or drop the affected points",
    check: (v: string) => (v === "fail" || v === "drop" ? undefined : `expected fail or drop, got '${v}'`),
  },
];

/** Typed data settings. */
export interface DataSettings {
  baseDataDir?: string;
  rawDataSubdir: string;
  patchDataSubdir: string;
  targetCols: string[];
  inputWindow: number;
  outputWindow: number;
  stride: number;
  batchSize: number;
  valRatio: number;
  seed: number;
  shuffleWithinBatches: boolean;
  shufflePatches: boolean;
  nanPolicy: "fail" | "drop";
}

/** Reads the data settings out of parsed flags. */
export function dataSettings(f: ParsedFlags): DataSettings {
  return {
    baseDataDir: f["base-data-dir"] as string | undefined,
    rawDataSubdir: f["raw-data-subdir"] as string,
    patchDataSubdir: f["patch-data-subdir"] as string,
    targetCols: f["target-cols"] as string[],
    inputWindow: f["input-window-size"] as number,
    outputWindow: f["output-window-size"] as number,
    stride: f["window-stride"] as number,
    batchSize: f["batch-size"] as number,
    valRatio: f["val-ratio"] as number,
    seed: f["seed"] as number,
    shuffleWithinBatches: f["shuffle-within-batches"] as boolean,
    shufflePatches: f["shuffle-patches"] as boolean,
    nanPolicy: f["nan-policy"] as "fail" | "drop",
  };
}
