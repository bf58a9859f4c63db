/**
 * `deno task prepare`: turns a folder of raw CSV files (one per time step) into a patch folder.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { preparePatches } from "./lib/data/prepare.ts";

const FLAGS: FlagSpec[] = [
  {
    name: "base-data-dir",
    type: "string",
    help: "data folder (raw CSVs in <raw-data-subdir>, patches written to <patch-data-subdir>)",
  },
  { name: "raw-data-subdir", type: "string", default: "all", help: "raw CSV subfolder" },
  { name: "patch-data-subdir", type: "string", default: "filter_patch", help: "patch subfolder to write" },
  { name: "n-patches", type: "int", default: 20, help: "number of patches", check: positiveInt },
  {
    name: "slice-split",
    type: "int",
    default: 4,
    help: "groups of consecutive slices clustered separately",
    check: positiveInt,
  },
  {
    name: "neighbour-k",
    type: "int",
    default: 10,
    aliases: ["neighbor-k"],
    help: "nearest nodes that define neighbouring patches",
    check: positiveInt,
  },
  {
    name: "ghost-points-ratio",
    type: "number",
    default: 0.05,
    help: "ghost points from each neighbour, as a share of the patch size",
    check: (v: number) => (v >= 0 && v <= 1 ? undefined : `must be between 0 and 1, got ${v}`),
  },
  {
    name: "n-ghost-points",
    type: "int",
    help: "ghost points from each neighbour (overrides the ratio)",
    check: (v: number) => (v >= 0 ? undefined : `must be 0 or more, got ${v}`),
  },
  { name: "seed", type: "int", default: 42, help: "k-means seed" },
  {
    name: "dtype",
    type: "string",
    default: "float32",
    help: "element type of the *_obs.npy files: float32 or float64",
    check: (
      v: string,
    ) => (v === "float32" || v === "float64" ? undefined : `expected float32 or float64, got '${v}'`),
  },
  {
    name: "allow-nan",
    type: "boolean",
    default: false,
    help: "keep NaN/Inf values (drop them at training time)",
  },
  { name: "force", type: "boolean", default: false, help: "replace an existing patch folder" },
  { name: "quiet", type: "boolean", default: false, help: "print nothing but errors" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, FLAGS);
    if (f._.length) {
      throw new FlagError(`unexpected argument(s): ${f._.join(" ")} (every setting is a --flag; see --help)`);
    }
    if (f.help) {
      console.log(formatHelp("Usage: deno task prepare --base-data-dir DIR [flags]", FLAGS));
      Deno.exit(0);
    }
    if (!f["base-data-dir"]) throw new FlagError("--base-data-dir is required");
    const base = f["base-data-dir"] as string;
    await preparePatches({
      rawDir: `${base}/${f["raw-data-subdir"]}`,
      outDir: `${base}/${f["patch-data-subdir"]}`,
      nPatches: f["n-patches"] as number,
      sliceSplit: f["slice-split"] as number,
      neighbourK: f["neighbour-k"] as number,
      ghostPointsRatio: f["ghost-points-ratio"] as number,
      nGhostPoints: f["n-ghost-points"] as number | undefined,
      seed: f.seed as number,
      dtype: f.dtype as "float32" | "float64",
      allowNan: f["allow-nan"] as boolean,
      force: f.force as boolean,
      log: f.quiet ? undefined : (m) => console.log(m),
    });
    return 0;
  });
}
