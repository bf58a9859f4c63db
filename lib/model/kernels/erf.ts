/**
 * erf to float32 accuracy without exp (Abramowitz & Stegun 7.1.28: erf(z) ~ 1 - P(z)^-16 with P(z) = 1 + a1 z +
 * ... + a6 z^6, |error| <= 3e-7): several times faster than exp-based forms in JavaScript. The GELU gradient
 * differentiates the same formula, so forward and backward agree exactly.
 *
 * @module
 */

/** The coefficients a1..a6. */
export const ERF_A = [
  0.0705230784,
  0.0422820123,
  0.0092705272,
  0.0001520143,
  0.0002765672,
  0.0000430638,
] as const;
const [A1, A2, A3, A4, A5, A6] = ERF_A;

/**
 * erf(x) to 3e-7.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { erf32 } from "./erf.ts";
 * assert.ok(Math.abs(erf32(1) - 0.8427007929) < 3e-7);
 * ```
 */
export function erf32(x: number): number {
  const z = x < 0 ? -x : x;
  let p = 1 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))));
  p *= p;
  p *= p;
  p *= p;
  p *= p;
  const r = 1 - 1 / p;
  return x < 0 ? -r : r;
}

/** P(z) and P'(z) of the approximation (z >= 0), for the GELU gradient. */
export function erfPoly(z: number): [number, number] {
  const p = 1 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))));
  const dp = A1 + z * (2 * A2 + z * (3 * A3 + z * (4 * A4 + z * (5 * A5 + z * 6 * A6))));
  return [p, dp];
}
