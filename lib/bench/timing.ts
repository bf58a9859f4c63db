/**
 * Timing helpers of the benchmarks: medians over repeats.
 *
 * @module
 */

/** The median of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The median time (ms) of `repeats` calls of `fn`. */
export function time(fn: () => void, repeats: number): number {
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/** The median time (ms) of `repeats` awaited calls of `fn`. */
export async function timeAsync(fn: () => Promise<unknown>, repeats: number): Promise<number> {
  const ts: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}
