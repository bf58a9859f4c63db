import assert from "node:assert/strict";
import { tempDir, TINY_TRAIN_ARGS, tinyPatchData } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("the offline bundle trains with nothing but the deno binary (empty cache, --cached-only, no node_modules)", async () => {
  await using t = await tempDir();
  const build = await new Deno.Command("bash", {
    args: [`${ROOT}hpc/build.sh`, "bundle"],
    env: { DENO: Deno.execPath() },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(build.code, 0, new TextDecoder().decode(build.stderr));
  await Deno.mkdir(`${t.dir}/app`);
  for (const e of Deno.readDirSync(`${ROOT}dist`)) {
    if (e.isFile) await Deno.copyFile(`${ROOT}dist/${e.name}`, `${t.dir}/app/${e.name}`);
  }
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cached-only",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      `${t.dir}/app/gino-train.js`,
      "--base-data-dir",
      await tinyPatchData(),
      ...TINY_TRAIN_ARGS,
      "--epochs",
      "1",
      "--results-dir",
      `${t.dir}/results`,
      "--run-name",
      "b",
    ],
    env: { DENO_DIR: `${t.dir}/empty-deno-dir`, NO_COLOR: "1" },
    cwd: t.dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
  const html = await Deno.readTextFile(`${t.dir}/results/b/training_curves.html`);
  assert.ok(html.length > 1_000_000, "plotly is inlined from beside the bundle");
  const png = await Deno.readFile(`${t.dir}/results/b/training_curves.png`);
  assert.ok(png.length > 10_000, "the PNG is rendered with resvg.wasm and the fonts beside the bundle");
  assert.ok(!/writing SVG figures only/.test(new TextDecoder().decode(run.stderr)));
  const ck = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cached-only",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-sys",
      "--allow-ffi",
      `${t.dir}/app/gino-ckpt.js`,
      "verify",
      `${t.dir}/results/b`,
    ],
    env: { DENO_DIR: `${t.dir}/empty-deno-dir` },
    cwd: t.dir,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(ck.code, 0, new TextDecoder().decode(ck.stdout) + new TextDecoder().decode(ck.stderr));
  assert.match(new TextDecoder().decode(ck.stdout), /OK .*final_checkpoint\.safetensors/);
});
