// Every command-line tool meets bad flags with exit status 2, one `error: ...` line that names the flag (or file)
// and no stack trace, before it creates anything.
import assert from "node:assert/strict";
import { tempDir, tinyPatchData } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** Runs a tool of the project with `cwd` as working directory. */
async function tool(script: string, args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      `${ROOT}${script}`,
      ...args,
    ],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** [script, arguments, what the error line must name] */
type Case = [string, string[], RegExp];

async function cases(): Promise<Case[]> {
  const data = ["--base-data-dir", await tinyPatchData()];
  const small = [...data, "--latent-grid", "8", "--fno-modes", "4"];
  return [
    ["train.ts", ["--gno-radius", "-1"], /--gno-radius: must be above 0/],
    ["train.ts", ["--gno-radius", "0"], /--gno-radius/],
    ["train.ts", ["--latent-grid", "0"], /--latent-grid: each value must be at least 2/],
    ["train.ts", ["--latent-grid", "8,8"], /--latent-grid: give one value or three/],
    [
      "train.ts",
      [...data, "--latent-grid", "8", "--fno-modes", "64"],
      /--fno-modes 64: .*--latent-grid is 8/,
    ],
    ["train.ts", [...data, "--latent-grid", "8,8,4", "--fno-modes", "8"], /--fno-modes 8: 8 modes along z/],
    ["train.ts", ["--fno-modes", "0"], /--fno-modes/],
    ["train.ts", ["--learning-rate", "-1"], /--learning-rate: must be above 0/],
    ["train.ts", ["--learning-rate", "0"], /--learning-rate/],
    ["train.ts", ["--val-ratio", "0"], /--val-ratio: must be between 0 and 1/],
    ["train.ts", ["--val-ratio", "1"], /--val-ratio/],
    ["train.ts", ["--lr-gamma", "0"], /--lr-gamma/],
    ["train.ts", ["--loss-eps", "-1"], /--loss-eps: must be 0 or more/],
    ["train.ts", ["--grad-clip-norm", "0"], /--grad-clip-norm/],
    ["train.ts", ["--gno-mlp-layers", "0"], /--gno-mlp-layers: each width must be at least 1/],
    ["train.ts", ["--batch-size", "0"], /--batch-size/],
    ["train.ts", ["--epochs", "0"], /--epochs/],
    ["train.ts", ["--epochs", "2.5"], /--epochs: expected an integer/],
    ["train.ts", ["--epochs"], /--epochs needs a value/],
    [
      "train.ts",
      ["--batch-size", "4", "--micro-batch", "9"],
      /--micro-batch 9 is larger than --batch-size 4/,
    ],
    ["train.ts", ["--time-limit", "0"], /--time-limit/],
    ["train.ts", ["--time-limit", "soon"], /--time-limit/],
    ["train.ts", ["--run-name", "../elsewhere"], /--run-name: must be a plain folder name/],
    ["train.ts", ["--backend", "gpu"], /--backend/],
    ["train.ts", ["--target-cols", "salinity"], /--target-cols/],
    ["train.ts", ["--nan-policy", "ignore"], /--nan-policy/],
    ["train.ts", ["--results-dir", ""], /--results-dir: must not be empty/],
    ["train.ts", ["--bogus"], /unknown flag --bogus/],
    ["train.ts", ["positional"], /unexpected argument\(s\): positional/],
    ["train.ts", ["--config", "missing.json"], /--config missing\.json/],
    ["train.ts", [...small, "--input-window-size", "100"], /no training windows .*--input-window-size/],
    ["train.ts", [...small, "--val-ratio", "0.02"], /no validation windows .*--val-ratio/],
    [
      "train.ts",
      [...small, "--resume-from", "missing.safetensors"],
      /checkpoint not found: missing\.safetensors/,
    ],
    ["train.ts", ["--base-data-dir", "no-such-folder"], /no-such-folder/],
    ["train.ts", ["--dry-run", "--gno-radius", "-1"], /--gno-radius/],
    ["prepare.ts", [], /--base-data-dir is required/],
    ["prepare.ts", ["--n-patches", "0"], /--n-patches/],
    ["prepare.ts", ["--ghost-points-ratio", "2"], /--ghost-points-ratio/],
    ["prepare.ts", ["--n-ghost-points", "-1"], /--n-ghost-points/],
    ["prepare.ts", ["--dtype", "f16"], /--dtype/],
    ["prepare.ts", ["--base-data-dir", "no-such-folder"], /no-such-folder/],
    ["prepare.ts", ["--base-data-dir", "x", "extra"], /unexpected argument/],
    ["henry.ts", [], /--out DIR is required/],
    ["henry.ts", ["--out", "h", "--nx", "0"], /--nx/],
    ["henry.ts", ["--out", "h", "--nx", "1"], /--nx must be at least 2/],
    ["henry.ts", ["--out", "h", "--porosity", "2"], /--porosity/],
    ["henry.ts", ["--out", "h", "--dt", "-1"], /--dt/],
    ["henry.ts", ["--out", "h", "--dt", "1e308"], /--dt/],
    [
      "henry.ts",
      ["--out", "h", "--dt", "1e9", "--steps", "2"],
      /salt mass-balance error .* --max-mass-balance-error/,
    ],
    ["henry.ts", ["--out", "h", "--sea-boundary", "sea"], /--sea-boundary/],
    ["henry.ts", ["--out", "h", "--steps", "0"], /--steps/],
    ["henry.ts", ["--out", "h", "--inflow-variation", "1"], /--inflow-variation/],
    ["henry.ts", ["--out", "h", "--max-mass-balance-error", "0"], /--max-mass-balance-error/],
    ["predict.ts", [], /a checkpoint is required/],
    ["predict.ts", ["missing.safetensors"], /missing\.safetensors/],
    ["predict.ts", ["a.safetensors", "b.safetensors"], /unexpected argument/],
    ["predict.ts", ["a.safetensors", "--rollout", "0"], /--rollout/],
    ["predict.ts", ["a.safetensors", "--part", "test"], /--part/],
    ["predict.ts", ["a.safetensors", "--backend", "gpu"], /--backend/],
    ["predict.ts", ["a.safetensors", "--batch-size", "0"], /--batch-size/],
    ["predict.ts", ["a.safetensors", "--map-steps", "x"], /--map-steps/],
    ["manage_checkpoints.ts", [], /name a command/],
    ["manage_checkpoints.ts", ["rename"], /unknown command 'rename'/],
    ["manage_checkpoints.ts", ["show"], /show needs a checkpoint path/],
    ["manage_checkpoints.ts", ["show", "missing.safetensors"], /missing\.safetensors/],
    ["manage_checkpoints.ts", ["verify", "a", "b"], /unexpected: b/],
    ["manage_checkpoints.ts", ["clean", "run", "abc"], /KEEP must be a whole number .*'abc'/],
    ["manage_checkpoints.ts", ["export", "a.safetensors"], /export needs an output file/],
    ["manage_checkpoints.ts", ["import", "w.safetensors"], /import needs --config/],
    ["manage_checkpoints.ts", ["latest", "--bogus"], /unknown flag --bogus/],
    ["bench.ts", [], /name a benchmark/],
    ["bench.ts", ["speed"], /unknown benchmark 'speed'/],
    ["bench.ts", ["step", "--points", "0"], /--points/],
    ["bench.ts", ["step", "--latent", "4"], /--latent/],
    ["bench.ts", ["step", "--backend", "gpu"], /--backend/],
    ["bench.ts", ["data", "--only", "everything"], /--only/],
  ];
}

Deno.test("every tool meets a table of bad flags with exit 2, one error line naming the flag, and nothing created", async () => {
  const table = await cases();
  const problems: string[] = [];
  for (const [script, args, names] of table) {
    await using t = await tempDir("gino-gw-bad-input-");
    const r = await tool(script, args, t.dir);
    const what = `${script} ${args.join(" ")}`;
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error: "));
    if (r.code !== 2) problems.push(`${what}: exit ${r.code}\n${r.stderr}`);
    else if (errors.length !== 1) problems.push(`${what}: ${errors.length} error lines\n${r.stderr}`);
    else if (!names.test(errors[0])) problems.push(`${what}: '${errors[0]}' does not match ${names}`);
    if (/^\s+at /m.test(r.stderr)) problems.push(`${what}: stack trace\n${r.stderr}`);
    const left = [...Deno.readDirSync(t.dir)].map((e) => e.name);
    if (left.length) problems.push(`${what}: created ${left.join(", ")}`);
  }
  assert.deepEqual(problems, [], `${problems.length} of ${table.length} cases failed`);
  console.log(`${table.length} bad-input cases`);
});

Deno.test("describeError(): an unexpected error is an internal-error line with a hint (exit 1), a full disk says what to do", async () => {
  const { describeError } = await import("../lib/cli/main.ts");
  const bug = describeError(new TypeError("x is undefined"));
  assert.equal(bug.code, 1);
  assert.match(
    bug.line,
    /^internal error: x is undefined \(a bug in gino-gw: run again with GINO_GW_DEBUG=1/,
  );
  const full = describeError(new Error("No space left on device (os error 28)"));
  assert.equal(full.code, 2);
  assert.match(full.line, /the disk is full: .* Files already saved are intact/);
});
