/**
 * Benchmarks that compare processes run each case in a child process and read the last JSON line it prints.
 *
 * @module
 */

/** `deno run` with the benchmark's permissions, and the path of bench.ts: prefix a child benchmark run with these. */
export const BENCH_RUN: string[] = [
  Deno.execPath(),
  "run",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
  "--allow-ffi",
  // the benchmark itself: bench.ts, or the bundle being run (dist/gino-bench.js)
  new URL(import.meta.url.endsWith(".ts") ? "../../bench.ts" : Deno.mainModule, import.meta.url).pathname,
];

/** Runs `cmd` and returns the last JSON line it printed; throws with its stderr when it fails. */
export async function jsonChild(
  cmd: string[],
  env?: Record<string, string>,
): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped", env })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  const line = text.trim().split("\n").findLast((l) => l.startsWith("{"));
  if (out.code !== 0 || !line) {
    throw new Error(
      `${cmd.join(" ")} failed (exit ${out.code}): ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
    );
  }
  return JSON.parse(line);
}
