/**
 * The vocabulary of settings that a user gives as flags: how one is declared (name, type, default, help, check)
 * and the checks shared by the tools. The command-line parser (`cli/flags.ts`) and the training settings
 * (`train/settings.ts`) both speak it.
 *
 * @module
 */

import { ToolError } from "./errors.ts";

/** The kinds of value a flag takes. */
export type FlagType = "string" | "int" | "number" | "boolean" | "list" | "intlist";

/** Declaration of one flag. */
export interface FlagSpec {
  /** Flag name without the dashes, kebab-case. */
  name: string;
  /** What kind of value it takes. */
  type: FlagType;
  /** Default value (undefined: no default). */
  default?: unknown;
  /** What the help says of the default instead of the value (a default that depends on the data, say). */
  defaultNote?: string;
  /** One line of help. */
  help: string;
  /** Other names (without dashes) for the same flag. */
  aliases?: string[];
  /** Extra check of the parsed value; return an error message, or undefined when fine. */
  check?: (value: never) => string | undefined;
}

/** A flag error (unknown flag, missing or bad value); the message names the flag. */
export class FlagError extends ToolError {
  /** An error with the given message (exit status 2). */
  constructor(message: string) {
    super(message);
    this.name = "FlagError";
  }
}

/** A flag's value from its text (`--flag text`), checked against its type; errors name the flag as `shown`. */
export function valueFromText(spec: FlagSpec, raw: string, shown: string): unknown {
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

/** A value from a JSON settings file, checked against the flag's type like a command-line value. */
export function valueFromJson(spec: FlagSpec, v: unknown, key: string): unknown {
  if (typeof v === "string") return valueFromText(spec, v, key);
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

/** Checks: a positive integer. */
export const positiveInt = (v: number): string | undefined =>
  Number.isInteger(v) && v >= 1 ? undefined : `must be at least 1, got ${v}`;

/** Checks: a number above zero. */
export const positive = (v: number): string | undefined => (v > 0 ? undefined : `must be above 0, got ${v}`);

/** Checks: a number of zero or more. */
export const nonNegative = (
  v: number,
): string | undefined => (v >= 0 ? undefined : `must be 0 or more, got ${v}`);

/**
 * Checks: a list of 1 or 3 integers, each at least `min` (a size per axis: `G` or `Gx,Gy,Gz`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { perAxis } from "./flagspec.ts";
 * assert.ok(perAxis(2)([8]) === undefined);
 * assert.ok(perAxis(2)([8, 8]) === "give one value or three (x,y,z), got 8,8");
 * ```
 */
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
