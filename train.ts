/**
 * `deno task train`: trains a GINO on patch data, with checkpoints, exact resume and walltime-safe stopping.
 * `--dry-run` loads the data as training would, builds the sampler, prints a summary and exits (`--json`: one JSON
 * object on stdout). Exit statuses: 0 done, 1 internal error, 2 bad input, 3 stopped resumably (signal or
 * --time-limit), 4 loss became NaN/Inf, 130 second interrupt.
 *
 * @module
 */

// first: signals from the first moment on are remembered (see the module)
import "./lib/cli/early_signals.ts";
import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import {
  SETTING_SPECS,
  settingsFromFlags,
  settingsFromSaved,
  validateSettings,
} from "./lib/train/settings.ts";
import { initWorld } from "./lib/parallel/world.ts";
import type { TrainSettings } from "./lib/train/settings.ts";
import { train } from "./lib/train/loop.ts";
import { dryRun } from "./lib/train/dry_run.ts";
import type { ResumeOptions } from "./lib/train/resume.ts";

/** Flags of this invocation only (not saved with the run). */
const INVOCATION_FLAGS: FlagSpec[] = [
  {
    name: "resume-from",
    type: "string",
    help: "checkpoint to resume, or 'auto' (newest valid checkpoint of the newest run)",
  },
  {
    name: "force-resume",
    type: "boolean",
    default: false,
    help: "resume although the data differ from the checkpoint's",
  },
  {
    name: "config",
    type: "string",
    help: "JSON file with settings (the flags' names as keys, or a run's config.json); flags override it",
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

const FLAGS: FlagSpec[] = [...SETTING_SPECS, ...INVOCATION_FLAGS];

const USAGE = `Usage: deno task train [flags]

Trains a GINO on the patch data in <base-data-dir>/<patch-data-subdir> (without --base-data-dir: the built-in demo
data set, generated on first use). Writes <results-dir>/<run-name>/: config.json, checkpoints/, loss_history.json,
training_curves.html/.png, train.log, metrics.jsonl. The windows, model, batch and epochs not given are chosen from
the data (the log says what and why; --reference takes the reference script's). Resume with --resume-from auto
(or a checkpoint path); --epochs is the total target. Exit status: 0 done, 1 internal error, 2 bad input, 3 stopped before the end with a
resumable checkpoint (SIGTERM/SIGINT or --time-limit), 4 loss became NaN/Inf, 130 second Ctrl-C.`;

/** A `--config` file: flag names (kebab- or snake_case) as keys, or a run's `config.json` (its `settings`). */
async function readConfigFile(
  path: string,
): Promise<{ flags: Record<string, unknown>; saved?: TrainSettings }> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new FlagError(`--config ${path}: ${(e as Error).message}`);
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new FlagError(`--config ${path}: not a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const settings = o.settings as Record<string, unknown> | undefined;
  if (settings && typeof settings === "object") return { flags: {}, saved: settingsFromSaved(settings) };
  return { flags: o };
}

/** Flags and `--config` -> typed settings, the settings given explicitly, and the invocation's options. */
async function settingsOf(args: string[]) {
  let flags = parseFlags(args, FLAGS);
  if (flags._.length) {
    throw new FlagError(
      `unexpected argument(s): ${flags._.join(" ")} (every setting is a --flag; see --help)`,
    );
  }
  let given = flags.__explicit;
  let base: TrainSettings | undefined;
  if (flags.config) {
    const file = await readConfigFile(flags.config as string);
    flags = parseFlags(args, FLAGS, file.flags);
    // settings from the config file count as given
    given = [
      ...new Set([...flags.__explicit, ...Object.keys(file.flags).map((k) => k.replaceAll("_", "-"))]),
    ];
    base = file.saved;
    if (base) given = [...new Set([...given, ...SETTING_SPECS.map((s) => s.name)])];
  }
  const values = base ? { ...flagsOfSettings(base), ...pick(flags, flags.__explicit) } : flags;
  const { settings, explicit } = settingsFromFlags(values, given);
  const options: ResumeOptions & { quiet: boolean } = {
    resumeFrom: flags["resume-from"] as string | undefined,
    forceResume: flags["force-resume"] as boolean,
    quiet: flags.quiet as boolean,
  };
  return { flags, settings, explicit, options };
}

const pick = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]));

/** Typed settings as flag values (for a `--config` that is a run's config.json). */
function flagsOfSettings(s: TrainSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of SETTING_SPECS) {
    const v = (s[spec.path[0]] as unknown as Record<string, unknown>)[spec.path[1]];
    if (v !== undefined) out[spec.name] = spec.path[1] === "timeLimit" ? String(v) : v;
  }
  return out;
}

async function main(args: string[]): Promise<number> {
  const help = parseFlags(args.filter((a) => a === "--help" || a === "-h"), FLAGS);
  if (help.help) {
    console.log(formatHelp(USAGE, FLAGS));
    return 0;
  }
  const { flags, settings, explicit, options } = await settingsOf(args);
  if (flags["dry-run"]) return await dryRun(settings, explicit, options, flags.json as boolean);
  validateSettings(settings); // before MPI: a bad flag is every rank's error, not a reason to abort a job
  return await train(settings, { ...options, explicit, world: initWorld() });
}

if (import.meta.main) await runMain(() => main(Deno.args));
