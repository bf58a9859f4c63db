// Shared helpers of the test suites.
import { readSafetensors } from "../lib/io/safetensors.ts";

/** A fresh temporary folder, removed by the returned cleanup. */
export async function tempDir(
  prefix = "gino-gw-test-",
): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix });
  return { dir, [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}) };
}

/** Folder of this file's fixtures. */
export const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

/** A PyTorch reference fixture (`gino-golden-*`): its config, weights, inputs and outputs (gradients included). */
export async function golden(name: string) {
  const dir = `${FIXTURES}${name}`;
  return {
    cfg: JSON.parse(await Deno.readTextFile(`${dir}/config.json`)),
    weights: (await readSafetensors(`${dir}/weights.safetensors`)).tensors,
    inputs: (await readSafetensors(`${dir}/inputs.safetensors`)).tensors,
    outputs: (await readSafetensors(`${dir}/outputs.safetensors`)).tensors,
  };
}

/** Writes a raw CSV folder: an nx x ny x nz grid of nodes (slice = z layer), `steps` time steps. */
export async function writeRawFolder(
  dir: string,
  { nx = 8, ny = 3, nz = 4, steps = 6 } = {},
): Promise<{ nodes: number; values: (t: number, i: number, c: number) => number }> {
  await Deno.mkdir(dir, { recursive: true });
  const nodes = nx * ny * nz;
  const values = (t: number, i: number, c: number) =>
    c === 0
      ? Math.sin(i * 0.37 + t * 0.1) * 10 + 17.5
      : c === 1
      ? 1 + 0.001 * i + 0.0001 * t
      : 9810 * (i % 7) + t;
  for (let t = 0; t < steps; t++) {
    const lines = ["node,slice,X,Y,Z,mass_concentration,head,pressure"];
    let i = 0;
    for (let z = 0; z < nz; z++) {
      for (let y = 0; y < ny; y++) {
        for (let x = 0; x < nx; x++) {
          lines.push(
            [i + 1, z + 1, x * 0.25, y * 0.5, -z * 0.1, values(t, i, 0), values(t, i, 1), values(t, i, 2)]
              .join(","),
          );
          i++;
        }
      }
    }
    await Deno.writeTextFile(`${dir}/${String(t).padStart(4, "0")}.csv`, lines.join("\n") + "\n");
  }
  return { nodes, values };
}

/**
 * Runs a task script of the project with Deno (the permissions of its task, `env` added to this process's
 * environment) and returns exit code, stdout and stderr.
 */
export async function runScript(
  script: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const root = new URL("../", import.meta.url).pathname;
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      `${root}${script}`,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
    cwd: root,
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Flags of a tiny model for fast training tests. */
export const TINY_TRAIN_ARGS = [
  "--input-window-size",
  "3",
  "--output-window-size",
  "2",
  "--batch-size",
  "4",
  "--latent-grid",
  "8",
  "--fno-modes",
  "4",
  "--fno-hidden-channels",
  "8",
  "--lifting-channels",
  "8",
  "--fno-layers",
  "2",
  "--gno-mlp-layers",
  "8",
  "--gno-radius",
  "0.6",
  "--projection-channel-ratio",
  "1",
  "--backend",
  "wasm",
  "--quiet",
];

/**
 * A learning-rate schedule that does not depend on the run's length (the reference's, per epoch): a run extended
 * later with a higher --epochs then equals one uninterrupted run (the default cosine schedule is re-planned when a
 * run is extended, by design).
 */
export const LENGTH_FREE_SCHEDULE = ["--lr-schedule", "exponential"];

let tinyData: Promise<string> | undefined;
/** A small patch data set (Henry slab, 2 patches), made once per test process and removed at its end. */
export function tinyPatchData(): Promise<string> {
  tinyData ??= (async () => {
    const { writeHenry } = await import("../lib/sim/henry.ts");
    const { preparePatches } = await import("../lib/data/prepare.ts");
    const dir = await Deno.makeTempDir({ prefix: "gino-gw-tiny-data-" });
    await writeHenry({
      nx: 12,
      nz: 6,
      ny: 2,
      steps: 48,
      saveEvery: 2,
      initialConcentration: 0,
      seaBoundary: "fixed",
    }, { out: dir, force: true });
    await preparePatches({ rawDir: `${dir}/all`, outDir: `${dir}/filter_patch`, nPatches: 2, sliceSplit: 2 });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return dir;
  })();
  return tinyData;
}

/**
 * An MPI launcher's arguments (after its command) that start `ranks` processes of train.ts on `data` with `args`
 * (the launcher's own options go before them).
 */
export function mpiTrainArgs(data: string, args: string[], ranks = 2): string[] {
  const root = new URL("../", import.meta.url).pathname;
  return [
    "-n",
    String(ranks),
    Deno.execPath(),
    "run",
    "-A",
    `${root}train.ts`,
    "--base-data-dir",
    data,
    ...args,
  ];
}

/** Runs train.ts on the tiny data set with the tiny model plus `args`. */
export async function runTrain(args: string[], env: Record<string, string> = {}) {
  const root = new URL("../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${root}train.ts`,
      "--base-data-dir",
      await tinyPatchData(),
      ...TINY_TRAIN_ARGS,
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
    cwd: root,
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** True when `cmd` is on the PATH. */
export function which(cmd: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null", stderr: "null" })
      .outputSync()
      .success;
  } catch {
    return false;
  }
}

/** The model tensors of a checkpoint, as `name:bytes` strings sorted by name: equal only when bitwise equal. */
export async function modelBytes(path: string): Promise<string[]> {
  const f = await readSafetensors(path);
  return Object.entries(f.tensors).filter(([k]) => k.startsWith("model.")).sort(([a], [b]) =>
    a.localeCompare(b)
  )
    .map(([k, t]) => `${k}:${new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).join(",")}`);
}
