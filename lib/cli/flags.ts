/**
 * Command-line flags for the toolkit's CLIs: kebab-case flags declared once with their type, default and help,
 * `--flag value` or `--flag=value`, `--no-flag` for booleans, and errors that name the flag.
 *
 * @module
 */

import { FlagError, valueFromJson, valueFromText } from "../flagspec.ts";
import type { FlagSpec } from "../flagspec.ts";

export { FlagError, nonNegative, perAxis, positive, positiveInt, widths } from "../flagspec.ts";
export type { FlagSpec, FlagType } from "../flagspec.ts";

/**
 * Parsed flags: name (kebab-case) -> value; `_` holds positional arguments, `__explicit` the names of the flags
 * given on the command line.
 */
export type ParsedFlags = Record<string, unknown> & { _: string[]; __explicit: string[] };

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
    out[s.name] = valueFromJson(s, v, key);
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
      } else out[spec.name] = eq >= 0 ? valueFromText(spec, arg.slice(eq + 1), name) : true;
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
    out[spec.name] = valueFromText(spec, raw, name);
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
    const def = s.defaultNote !== undefined
      ? ` [default: ${s.defaultNote}]`
      : s.default === undefined
      ? ""
      : ` [default: ${Array.isArray(s.default) ? s.default.join(",") : s.default}]`;
    return [left, `${s.help}${def}`];
  });
  const w = Math.min(48, Math.max(...rows.map((r) => r[0].length)) + 2);
  return `${usage}\n\nFlags:\n${
    rows.map(([l, r]) => (l.length >= w ? `${l}\n${" ".repeat(w)}${r}` : l.padEnd(w) + r)).join("\n")
  }\n`;
}
