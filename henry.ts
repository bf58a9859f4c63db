/**
 * `deno task henry`: the built-in Henry saltwater-intrusion generator (MODFLOW 6 GWF + GWT + BUY scheme), writing
 * the raw CSV format. `--demo` writes the built-in 3D demo data set and prepares it into patches.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { HENRY_DEFAULTS, HENRY_DEMO, writeHenry } from "./lib/sim/henry.ts";
import type { HenryOptions } from "./lib/sim/henry.ts";
import { DEMO_DIR, DEMO_PREPARE } from "./lib/data/demo.ts";
import { preparePatches } from "./lib/data/prepare.ts";

const D = HENRY_DEFAULTS;
const FLAGS: FlagSpec[] = [
  { name: "out", type: "string", help: "output folder (CSV files go to OUT/all/); required unless --demo" },
  { name: "nx", type: "int", default: D.nx, help: "columns along x" },
  { name: "nz", type: "int", default: D.nz, help: "layers along z (layer 1 at the top)" },
  { name: "ny", type: "int", default: D.ny, help: "rows along y" },
  { name: "length", type: "number", default: D.length, help: "length along x, m" },
  { name: "height", type: "number", default: D.height, help: "height, m" },
  { name: "width", type: "number", default: D.width, help: "width of one y-row, m" },
  { name: "k", type: "number", default: D.k, help: "hydraulic conductivity, m/d" },
  { name: "porosity", type: "number", default: D.porosity, help: "porosity, in (0, 1]" },
  {
    name: "diffc",
    type: "number",
    default: D.diffc,
    help: "molecular diffusion, m2/d (effective: porosity x diffc)",
  },
  { name: "inflow", type: "number", default: D.inflow, help: "fresh inflow, m3/d per metre of width" },
  {
    name: "sea-concentration",
    type: "number",
    default: D.seaConcentration,
    help: "sea-water concentration, kg/m3",
  },
  { name: "drhodc", type: "number", default: D.drhodc, help: "density slope d rho / dC" },
  {
    name: "initial-concentration",
    type: "number",
    default: D.initialConcentration,
    help: "initial concentration, kg/m3",
  },
  {
    name: "sea-boundary",
    type: "string",
    default: D.seaBoundary,
    help: "chd (constant head, inflow at sea concentration) or fixed (also fixed concentration)",
  },
  { name: "dt", type: "number", default: D.dt, help: "time step, d" },
  {
    name: "max-mass-balance-error",
    type: "number",
    default: D.maxMassBalanceError,
    help: "stop with an error when a step's relative salt mass-balance error exceeds this",
  },
  { name: "steps", type: "int", default: D.steps, help: "time steps" },
  {
    name: "save-every",
    type: "int",
    default: D.saveEvery,
    help: "save every N steps (step 0 and the last step always)",
  },
  {
    name: "inflow-variation",
    type: "number",
    default: D.inflowVariation,
    help: "inflow of y-row j scaled by 1 + a cos(pi (j + 0.5) / ny)",
  },
  {
    name: "inflow-amplitude",
    type: "number",
    default: D.inflowAmplitude,
    help: "inflow varies in time as 1 + a sin(2 pi t / period)",
  },
  { name: "inflow-period", type: "number", default: D.inflowPeriod, help: "period of that variation, d" },
  {
    name: "demo",
    type: "boolean",
    default: false,
    help: `the built-in 3D demo data set (${
      Object.entries(HENRY_DEMO).map(([k, v]) => `${k}=${v}`).join(", ")
    }), prepared into patches; OUT defaults to ${DEMO_DIR}`,
  },
  {
    name: "format",
    type: "string",
    default: "csv",
    help:
      "csv (one CSV per saved step in OUT/all/) or mf6 (MODFLOW 6 binary files: OUT/henry.dis.grb, .hds, .ucn)",
    check: (v: string) => (v === "csv" || v === "mf6" ? undefined : `choose csv or mf6, got '${v}'`),
  },
  { name: "force", type: "boolean", default: false, help: "replace a non-empty output folder" },
  { name: "quiet", type: "boolean", default: false, help: "print nothing but errors" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

const KEYS: Record<string, keyof HenryOptions> = {
  "nx": "nx",
  "nz": "nz",
  "ny": "ny",
  "length": "length",
  "height": "height",
  "width": "width",
  "k": "k",
  "porosity": "porosity",
  "diffc": "diffc",
  "inflow": "inflow",
  "sea-concentration": "seaConcentration",
  "drhodc": "drhodc",
  "initial-concentration": "initialConcentration",
  "sea-boundary": "seaBoundary",
  "dt": "dt",
  "steps": "steps",
  "save-every": "saveEvery",
  "inflow-variation": "inflowVariation",
  "inflow-amplitude": "inflowAmplitude",
  "inflow-period": "inflowPeriod",
  "max-mass-balance-error": "maxMassBalanceError",
};

if (import.meta.main) {
  await runMain(async () => {
    const f = parseFlags(Deno.args, FLAGS);
    if (f._.length) {
      throw new FlagError(`unexpected argument(s): ${f._.join(" ")} (every setting is a --flag; see --help)`);
    }
    if (f.help) {
      console.log(
        formatHelp(
          "Usage: deno task henry --out DIR [flags]   |   deno task henry --demo [--out DIR]",
          FLAGS,
        ),
      );
      Deno.exit(0);
    }
    const given = new Set(Deno.args.filter((a) => a.startsWith("--")).map((a) => a.slice(2).split("=")[0]));
    const opts: Partial<HenryOptions> = {};
    for (const [flag, key] of Object.entries(KEYS)) {
      // --demo sets its own parameters; flags given explicitly still override them
      if (f.demo && !given.has(flag) && key in HENRY_DEMO) continue;
      (opts as Record<string, unknown>)[key] = f[flag];
    }
    if (f.demo) {
      Object.assign(
        opts,
        Object.fromEntries(Object.entries(HENRY_DEMO).filter(([k]) => !(k in opts))),
      );
    }
    const out = (f.out as string | undefined) ?? (f.demo ? DEMO_DIR : undefined);
    if (!out) throw new FlagError("--out DIR is required");
    const log = f.quiet ? undefined : (m: string) => console.log(m);
    const format = f.format as "csv" | "mf6";
    if (f.demo && format !== "csv") throw new FlagError("--demo writes CSV files; leave out --format");
    await writeHenry(opts, { out, force: f.force as boolean, log, format });
    if (f.demo) {
      await preparePatches({
        rawDir: `${out}/all`,
        outDir: `${out}/filter_patch`,
        ...DEMO_PREPARE,
        force: true,
        log,
      });
    }
    return 0;
  });
}
