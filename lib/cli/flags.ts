/**
 * Command-line flags for the toolkit's CLIs: kebab-case flags declared once with their type, default and help,
 * `--flag value` or `--flag=value`, `--no-flag` for booleans, and errors that name the flag.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** The kinds of value a flag takes. */
export type FlagType = "string" | "int" | "number" | "boolean" | "list" | "intlist";

/** Declaration of one flag. */
export interface FlagSpec {
  /** Flag name without the dashes, kebab-case. */
  name: string;
  type: FlagType;
  /** Default value (undefined: no default). */
  default?: unknown;
  /** One line of help. */
  help: string;
  /** Other names (without dashes) for the same flag. */
  aliases?: string[];
  /** Extra check of the parsed value; return an error message, or undefined when fine. */
  check?: (value: never) => string | undefined;
}

/** A flag error (unknown flag, missing or bad value); the message names the flag. */
export class FlagError extends ToolError {
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/**
 * Parsed flags: name (kebab-case) -> value; `_` holds positional arguments, `__explicit` the names of the flags
 * given on the command line.
 */
export type ParsedFlags = Record<string, unknown> & { _: string[]; __explicit: string[] };

function parseValue(spec: FlagSpec, raw: string, shown: string): unknown {
  const bad = (what: string) => new FlagError(`--${shown}: ${what}, got '${raw}'`);
  switch (spec.type) {
    case "string":
      return raw;
    case "int": {
      const v = Number(raw);
      if (raw.trim() === "" || !Number.isInteger(v)) throw bad("expected an integer");
      return v;
    }
    case "number": {
      const v = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(v)) throw bad("expected a number");
      return v;
    }
    case "boolean": {
      if (["true", "1", "yes"].includes(raw)) return true;
      if (["false", "0", "no"].includes(raw)) return false;
      throw bad("expected true or false");
    }
    case "list":
      return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "intlist": {
      const parts = raw.split(",").map((s) => s.trim());
      const vals = parts.map(Number);
      if (parts.some((s) => s === "") || vals.some((v) => !Number.isInteger(v))) {
        throw bad("expected comma-separated integers");
      }
      return vals;
    }
  }
}

/** A value from a `--config` file, checked against the flag's type like a command-line value. */
function fromConfig(spec: FlagSpec, v: unknown, key: string): unknown {
  if (typeof v === "string") return parseValue(spec, v, key);
  const bad = (what: string) => new FlagError(`config key '${key}': ${what}, got ${JSON.stringify(v)}`);
  switch (spec.type) {
    case "string":
      throw bad("expected a string");
    case "int":
      if (!Number.isInteger(v)) throw bad("expected an integer");
      return v;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) throw bad("expected a number");
      return v;
    case "boolean":
      if (typeof v !== "boolean") throw bad("expected true or false");
      return v;
    case "list":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
        throw bad("expected a list of strings");
      }
      return v;
    case "intlist":
      if (Number.isInteger(v)) return [v];
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isInteger(x))) {
        throw bad("expected a list of integers");
      }
      return v;
  }
}

/**
 * Parses `args` against `specs`. Values from `base` (e.g. a `--config` file) replace the defaults; flags given on
 * the command line replace both.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./flags.ts";
 * const flags = parseFlags(["--epochs", "3", "--no-shuffle"], [
 *   { name: "epochs", type: "int", default: 5, help: "epochs" },
 *   { name: "shuffle", type: "boolean", default: true, help: "shuffle" },
 * ]);
 * // flags.epochs === 3, flags.shuffle === false
 * ```
 */
export function parseFlags(
  args: readonly string[],
  specs: readonly FlagSpec[],
  base: Record<string, unknown> = {},
): ParsedFlags {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    for (const a of s.aliases ?? []) byName.set(a, s);
  }
  const out: ParsedFlags = { _: [], __explicit: [] };
  const explicit = new Set<string>();
  for (const s of specs) if (s.default !== undefined) out[s.name] = s.default;
  for (const [k, v] of Object.entries(base)) {
    const key = k.replaceAll("_", "-");
    const s = byName.get(key);
    if (!s) throw new FlagError(`config key '${k}' is not a known setting (see --help)`);
    out[s.name] = fromConfig(s, v, key);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out._.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || arg === "-") {
      if (arg.startsWith("-") && arg !== "-" && !/^-\d/.test(arg)) {
        if (arg === "-h") {
          out.help = true;
          continue;
        }
        throw new FlagError(`unknown flag ${arg} (see --help)`);
      }
      out._.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    let spec = byName.get(name);
    let negated = false;
    if (!spec && name.startsWith("no-")) {
      const s = byName.get(name.slice(3));
      if (s?.type === "boolean") {
        spec = s;
        negated = true;
      }
    }
    if (!spec) throw new FlagError(`unknown flag --${name} (see --help)`);
    explicit.add(spec.name);
    if (spec.type === "boolean") {
      if (negated) {
        if (eq >= 0) throw new FlagError(`--${name} takes no value`);
        out[spec.name] = false;
      } else out[spec.name] = eq >= 0 ? parseValue(spec, arg.slice(eq + 1), name) : true;
      continue;
    }
    let raw: string;
    if (eq >= 0) raw = arg.slice(eq + 1);
    else {
      if (i + 1 >= args.length || (args[i + 1].startsWith("--") && args[i + 1].length > 2)) {
        throw new FlagError(`--${name} needs a value`);
      }
      raw = args[++i];
    }
    out[spec.name] = parseValue(spec, raw, name);
  }
  out.__explicit = [...explicit];
  for (const s of specs) {
    if (s.check && out[s.name] !== undefined) {
      const msg = s.check(out[s.name] as never);
      if (msg) throw new FlagError(`--${s.name}: ${msg}`);
    }
  }
  return out;
}

/** Formats the help text: one line per flag with its default. */
export function formatHelp(usage: string, specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const value = s.type === "boolean"
      ? ""
      : ` <${s.type === "list" || s.type === "intlist" ? "a,b,..." : s.type}>`;
    const neg = s.type === "boolean" ? ` / --no-${s.name}` : "";
    const left = `  --${s.name}${neg}${value}`;
    const def = s.default === undefined
      ? ""
      : ` [default: ${Array.isArray(s.default) ? s.default.join(",") : s.default}]`;
    return [left, `${s.help}${def}`];
  });
  const w = Math.min(48, Math.max(...rows.map((r) => r[0].length)) + 2);
  return `${usage}\n\nFlags:\n${
    rows.map(([l, r]) => (l.length >= w ? `${l}\n${" ".repeat(w)}${r}` : l.padEnd(w) + r)).join("\n")
  }\n`;
}

/** Checks: a positive integer. */
export const positiveInt = (
  v: number,
): string | undefined => (v >= 1 ? undefined : `must be at least 1, got ${v}`);

/** Checks: a number above zero. */
export const positive = (v: number): string | undefined => (v > 0 ? undefined : `must be above 0, got ${v}`);

/** Checks: a number of zero or more. */
export const nonNegative = (
  v: number,
): string | undefined => (v >= 0 ? undefined : `must be 0 or more, got ${v}`);

/** Checks: a list of 1 or 3 integers, each at least `min` (a size per axis: `G` or `Gx,Gy,Gz`). */
export const perAxis = (min: number) => (v: number[]): string | undefined =>
  v.length !== 1 && v.length !== 3
    ? `give one value or three (x,y,z), got ${v.join(",")}`
    : v.some((x) => x < min)
    ? `each value must be at least ${min}, got ${v.join(",")}`
    : undefined;

/** Checks: a list of integers each at least 1 (layer widths). */
export const widths = (v: number[]): string | undefined =>
  v.length === 0 || v.some((x) => x < 1)
    ? `each width must be at least 1, got ${v.join(",") || "none"}`
    : undefined;
