/**
 * `deno task prepare`: turns a folder of raw CSV files (one per time step), or a MODFLOW 6 model's binary grid,
 * head and concentration files, into a patch folder.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags, positive, positiveInt } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { preparePatches } from "./lib/data/prepare.ts";
import { findMf6Files } from "./lib/data/mf6_files.ts";

const FLAGS: FlagSpec[] = [
  {
    name: "base-data-dir",
    type: "string",
    help: "data folder (raw CSVs in <raw-data-subdir>, patches written to <patch-data-subdir>)",
  },
  { name: "raw-data-subdir", type: "string", default: "all", help: "raw CSV subfolder" },
  {
    name: "mf6-grid",
    type: "string",
    help:
      "MODFLOW 6 binary grid file (.dis.grb, .disv.grb, .disu.grb): prepare from MODFLOW 6 output instead of CSV",
  },
  { name: "mf6-heads", type: "string", help: "MODFLOW 6 head file (.hds), with --mf6-grid" },
  {
    name: "mf6-conc",
    type: "string",
    help: "MODFLOW 6 concentration file (.ucn), optional: without it the data holds heads and pressures only",
  },
  {
    name: "mf6-dir",
    type: "string",
    help:
      "a MODFLOW 6 model folder: its .grb, .hds and .ucn files are found there (or name them with --mf6-*)",
  },
  {
    name: "density-ref",
    type: "number",
    default: 1000,
    help: "MODFLOW 6 input: reference density for the pressure, kg/m3",
    check: positive,
  },
  {
    name: "drhodc",
    type: "number",
    default: 0.7,
    help: "MODFLOW 6 input: density slope d rho / dC for the pressure",
  },
  {
    name: "gravity",
    type: "number",
    default: 9.81,
    help: "MODFLOW 6 input: gravity for the pressure, m/s2",
    check: positive,
  },
  { name: "patch-data-subdir", type: "string", default: "filter_patch", help: "patch subfolder to write" },
  {
    name: "n-patches",
    type: "int",
    help: "number of patches (default 20, fewer for a small model: at least 50 points per patch)",
    check: positiveInt,
  },
  {
    name: "slice-split",
    type: "int",
    help:
      "groups of consecutive slices clustered separately (default 4, or the data's slices/layers if fewer)",
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
      console.log(
        formatHelp(
          "Usage: deno task prepare --base-data-dir DIR [flags]                       (DIR/all/*.csv)\n" +
            "       deno task prepare --base-data-dir DIR --mf6-grid G --mf6-heads H [--mf6-conc C] [flags]\n" +
            "       deno task prepare --base-data-dir DIR --mf6-dir MODEL [flags]",
          FLAGS,
        ),
      );
      Deno.exit(0);
    }
    if (!f["base-data-dir"]) throw new FlagError("--base-data-dir is required");
    const base = f["base-data-dir"] as string;
    const mf6 = await findMf6Files({
      dir: f["mf6-dir"] as string | undefined,
      grid: f["mf6-grid"] as string | undefined,
      heads: f["mf6-heads"] as string | undefined,
      conc: f["mf6-conc"] as string | undefined,
    });
    await preparePatches({
      rawDir: `${base}/${f["raw-data-subdir"]}`,
      mf6: mf6 && {
        ...mf6,
        densityRef: f["density-ref"] as number,
        drhodc: f.drhodc as number,
        gravity: f.gravity as number,
      },
      outDir: `${base}/${f["patch-data-subdir"]}`,
      nPatches: f["n-patches"] as number | undefined,
      sliceSplit: f["slice-split"] as number | undefined,
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
