import assert from "node:assert/strict";
import { runScript, runTrain, tempDir } from "./_helpers.ts";
import { createGino } from "../lib/model/gino.ts";
import { REFERENCE_GINO } from "../lib/model/config.ts";
import { writeSafetensors } from "../lib/io/safetensors.ts";
import { initBackend } from "../lib/model/backend.ts";

const ckpt = (args: string[]) => runScript("manage_checkpoints.ts", args);

Deno.test("ckpt latest, list, show and verify describe real runs", async () => {
  await using t = await tempDir();
  assert.equal((await runTrain(["--epochs", "2", "--results-dir", t.dir, "--run-name", "old"])).code, 0);
  assert.equal(
    (await runTrain([
      "--epochs",
      "5",
      "--results-dir",
      t.dir,
      "--run-name",
      "new",
      "--save-checkpoint-every",
      "1",
    ], { GINO_GW_TEST_SIGTERM_AFTER_STEP: "20" })).code,
    3,
  );
  const latest = JSON.parse((await ckpt(["latest", "--results-dir", t.dir, "--json"])).stdout);
  assert.equal(latest.run, "new");
  assert.equal(latest.epoch, 2);
  assert.equal(latest.step_in_epoch, 4);
  assert.match(latest.checkpoint, /new\/checkpoints\/latest_checkpoint\.safetensors$/);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/new/loss_history.json`));
  assert.equal(latest.val_loss, h.val_losses[1]);

  const list = JSON.parse((await ckpt(["list", "--results-dir", t.dir, "--json"])).stdout);
  const byName = Object.fromEntries(list.map((r: { run: string }) => [r.run, r]));
  assert.equal(byName.old.state, "finished");
  assert.equal(byName.old.epochs_done, 2);
  assert.equal(byName.old.epochs_target, 2);
  assert.equal(byName.new.state, "stopped");
  assert.equal(byName.new.epochs_done, 2);
  assert.equal(byName.new.epochs_target, 5);
  assert.ok(byName.new.size_bytes > 0);
  const text = (await ckpt(["list", "--results-dir", t.dir])).stdout;
  assert.match(text, /new\s+2\/5\s+\S+\s+\S+\s+[\d.]+ MiB\s+stopped/);

  const show = JSON.parse(
    (await ckpt(["show", `${t.dir}/new/checkpoints/checkpoint_epoch_0002.safetensors`, "--json"])).stdout,
  );
  assert.equal(show.integrity.ok, true);
  assert.equal(show.epoch, 2);
  assert.equal(show.optimizer.step, 16);
  assert.equal(show.settings.optim.epochs, 5);
  assert.ok(
    show.tensors.some((x: { name: string }) => x.name === "optim.projection.fcs.1.weight.exp_avg_sq"),
  );

  const ok = await ckpt(["verify", `${t.dir}/new`]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /OK .*checkpoint_epoch_0001\.safetensors \(epoch 1/);
});

Deno.test("ckpt verify catches a flipped byte, a truncated file and a wrong header", async () => {
  await using t = await tempDir();
  assert.equal((await runTrain(["--epochs", "1", "--results-dir", t.dir, "--run-name", "v"])).code, 0);
  const src = `${t.dir}/v/checkpoints/final_checkpoint.safetensors`;
  const bytes = await Deno.readFile(src);
  const flipped = bytes.slice();
  flipped[flipped.length - 7] ^= 0x10;
  await Deno.writeFile(`${t.dir}/flipped.safetensors`, flipped);
  await Deno.writeFile(`${t.dir}/truncated.safetensors`, bytes.subarray(0, bytes.length - 64));
  const header = bytes.slice();
  header.set(new TextEncoder().encode("XX"), 8);
  await Deno.writeFile(`${t.dir}/header.safetensors`, header);
  for (
    const [name, msg] of [["flipped", /SHA-256 of the file does not match/], [
      "truncated",
      /truncated/,
    ], ["header", /header is not valid JSON/]] as const
  ) {
    const r = await ckpt(["verify", `${t.dir}/${name}.safetensors`]);
    assert.equal(r.code, 1, `${name}: ${r.stdout}`);
    assert.match(r.stdout, new RegExp(`FAILED .*${name}\\.safetensors`));
    assert.match(r.stdout, msg);
  }
  assert.equal((await ckpt(["verify", src])).code, 0);
});

Deno.test("ckpt clean keeps the newest KEEP epoch checkpoints and never latest, best or final; --dry-run deletes nothing", async () => {
  await using t = await tempDir();
  assert.equal(
    (await runTrain([
      "--epochs",
      "5",
      "--results-dir",
      t.dir,
      "--run-name",
      "c",
      "--save-checkpoint-every",
      "1",
    ])).code,
    0,
  );
  const dir = `${t.dir}/c/checkpoints`;
  const names = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const all = names();
  assert.equal(all.filter((n) => n.startsWith("checkpoint_epoch_")).length, 5);
  const dry = JSON.parse((await ckpt(["clean", `${t.dir}/c`, "2", "--dry-run", "--json"])).stdout);
  assert.deepEqual(dry.deleted, [
    "checkpoint_epoch_0003.safetensors",
    "checkpoint_epoch_0002.safetensors",
    "checkpoint_epoch_0001.safetensors",
  ]);
  assert.ok(dry.freed_bytes > 0);
  assert.deepEqual(names(), all);
  const done = await ckpt(["clean", "c", "2", "--results-dir", t.dir]);
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stdout, /deleted 3 checkpoint\(s\)/);
  assert.deepEqual(
    names(),
    [
      "best_checkpoint.safetensors",
      "checkpoint_epoch_0004.safetensors",
      "checkpoint_epoch_0005.safetensors",
      "final_checkpoint.safetensors",
      "latest_checkpoint.safetensors",
    ].filter((n) => all.includes(n)),
  );
});

Deno.test("ckpt backup makes a verified copy named by run and epoch and never overwrites", async () => {
  await using t = await tempDir();
  assert.equal((await runTrain(["--epochs", "1", "--results-dir", t.dir, "--run-name", "b"])).code, 0);
  const src = `${t.dir}/b/checkpoints/best_checkpoint.safetensors`;
  const r = JSON.parse((await ckpt(["backup", src, `${t.dir}/safe`, "--json"])).stdout);
  assert.equal(r.to, `${t.dir}/safe/b_epoch0001_best.safetensors`);
  assert.deepEqual(await Deno.readFile(r.to), await Deno.readFile(src));
  const again = await ckpt(["backup", src, `${t.dir}/safe`]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /exists already; not overwriting/);
});

// gino-spec.md section 4: the reference state_dict (T_in = T_out = 10)
const REFERENCE: [string, number[]][] = [
  ["in_gno.integral_transform.channel_mlp.fcs.0.weight", [32, 384]],
  ["in_gno.integral_transform.channel_mlp.fcs.0.bias", [32]],
  ["in_gno.integral_transform.channel_mlp.fcs.1.weight", [64, 32]],
  ["in_gno.integral_transform.channel_mlp.fcs.1.bias", [64]],
  ["in_gno.integral_transform.channel_mlp.fcs.2.weight", [32, 64]],
  ["in_gno.integral_transform.channel_mlp.fcs.2.bias", [32]],
  ["in_gno.integral_transform.channel_mlp.fcs.3.weight", [10, 32]],
  ["in_gno.integral_transform.channel_mlp.fcs.3.bias", [10]],
  ["fno_blocks.fno_skips.0.weight", [64, 64, 1, 1, 1]],
  ["fno_blocks.fno_skips.1.weight", [64, 64, 1, 1, 1]],
  ["fno_blocks.fno_skips.2.weight", [64, 64, 1, 1, 1]],
  ["fno_blocks.fno_skips.3.weight", [64, 64, 1, 1, 1]],
  ["fno_blocks.convs.0.bias", [1, 64, 1, 1, 1]],
  ["fno_blocks.convs.0.weight.0.tensor", [64, 64, 8, 8, 5, 2]],
  ["fno_blocks.convs.1.bias", [1, 64, 1, 1, 1]],
  ["fno_blocks.convs.1.weight.0.tensor", [64, 64, 8, 8, 5, 2]],
  ["fno_blocks.convs.2.bias", [1, 64, 1, 1, 1]],
  ["fno_blocks.convs.2.weight.0.tensor", [64, 64, 8, 8, 5, 2]],
  ["fno_blocks.convs.3.bias", [1, 64, 1, 1, 1]],
  ["fno_blocks.convs.3.weight.0.tensor", [64, 64, 8, 8, 5, 2]],
  ["lifting.fcs.0.weight", [64, 10, 1]],
  ["lifting.fcs.0.bias", [64]],
  ["lifting.fcs.1.weight", [64, 64, 1]],
  ["lifting.fcs.1.bias", [64]],
  ["out_gno.integral_transform.channel_mlp.fcs.0.weight", [32, 384]],
  ["out_gno.integral_transform.channel_mlp.fcs.0.bias", [32]],
  ["out_gno.integral_transform.channel_mlp.fcs.1.weight", [64, 32]],
  ["out_gno.integral_transform.channel_mlp.fcs.1.bias", [64]],
  ["out_gno.integral_transform.channel_mlp.fcs.2.weight", [32, 64]],
  ["out_gno.integral_transform.channel_mlp.fcs.2.bias", [32]],
  ["out_gno.integral_transform.channel_mlp.fcs.3.weight", [64, 32]],
  ["out_gno.integral_transform.channel_mlp.fcs.3.bias", [64]],
  ["projection.fcs.0.weight", [128, 64, 1]],
  ["projection.fcs.0.bias", [128]],
  ["projection.fcs.1.weight", [10, 128, 1]],
  ["projection.fcs.1.bias", [10]],
];

/** Reads names and shapes of a safetensors file with Python's standard library (no code shared with ours). */
async function independentHeader(
  path: string,
): Promise<{ names: [string, number[]][]; metadata: Record<string, string>; dataBytes: number }> {
  const py = `
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
meta = h.pop("__metadata__", {})
items = sorted(h.items(), key=lambda kv: kv[1]["data_offsets"][0])
assert all(v["dtype"] == "F32" for _, v in items)
print(json.dumps({"names": [[k, v["shape"]] for k, v in items], "metadata": meta, "dataBytes": len(raw) - 8 - n}))
`;
  try {
    const out = await new Deno.Command("python3", {
      args: ["-c", py, path],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (out.code === 0) return JSON.parse(new TextDecoder().decode(out.stdout));
  } catch {
    // no python3: read it here, by hand
  }
  const raw = await Deno.readFile(path);
  const n = Number(new DataView(raw.buffer).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(raw.subarray(8, 8 + n)));
  const metadata = h.__metadata__ ?? {};
  delete h.__metadata__;
  const items = Object.entries(h as Record<string, { shape: number[]; data_offsets: number[] }>).sort((
    a,
    b,
  ) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  return { names: items.map(([k, v]) => [k, v.shape]), metadata, dataBytes: raw.length - 8 - n };
}

Deno.test("ckpt import makes a trainable checkpoint from PyTorch weights, and export gives back the reference names and shapes", async () => {
  await using t = await tempDir();
  await initBackend("wasm");
  const kwargs = REFERENCE_GINO;
  const model = createGino(kwargs, 3);
  const weights = model.toTorchStateDict();
  model.dispose();
  await writeSafetensors(`${t.dir}/torch.safetensors`, weights, { format: "pt" });
  await Deno.writeTextFile(
    `${t.dir}/config.json`,
    JSON.stringify({ gino_kwargs: kwargs, settings: { "latent-grid": [8] } }),
  );
  const imp = await ckpt([
    "import",
    `${t.dir}/torch.safetensors`,
    "--config",
    `${t.dir}/config.json`,
    "--out",
    `${t.dir}/start.safetensors`,
  ]);
  assert.equal(imp.code, 0, imp.stderr);
  const exp = await ckpt(["export", `${t.dir}/start.safetensors`, `${t.dir}/out.safetensors`]);
  assert.equal(exp.code, 0, exp.stderr);
  const h = await independentHeader(`${t.dir}/out.safetensors`);
  assert.deepEqual(h.names, REFERENCE);
  assert.equal(h.metadata.format, "pt");
  assert.equal(h.dataBytes, 10_552_340 * 4);
  const back = (await import("../lib/io/safetensors.ts")).readSafetensors;
  const round = await back(`${t.dir}/out.safetensors`);
  for (const [k] of REFERENCE) assert.deepEqual(round.tensors[k].data, weights[k].data, k);

  // training starts from the imported weights (a small model, so it runs quickly)
  const small = {
    ...kwargs,
    in_gno_out_channels: 3,
    out_channels: 2,
    fno_n_layers: 2,
    fno_n_modes: [4, 4, 4],
    fno_hidden_channels: 8,
    lifting_channels: 8,
    in_gno_channel_mlp_layers: [8],
    out_gno_channel_mlp_layers: [8],
    projection_channel_ratio: 1,
    in_gno_radius: 0.6,
    out_gno_radius: 0.6,
  };
  const m2 = createGino(small, 4);
  await writeSafetensors(`${t.dir}/small.safetensors`, m2.toTorchStateDict());
  m2.dispose();
  await Deno.writeTextFile(
    `${t.dir}/small.json`,
    JSON.stringify({ gino_kwargs: small, settings: { "latent-grid": [8], "batch-size": 4 } }),
  );
  assert.equal(
    (await ckpt([
      "import",
      `${t.dir}/small.safetensors`,
      "--config",
      `${t.dir}/small.json`,
      "--out",
      `${t.dir}/small_ckpt.safetensors`,
    ])).code,
    0,
  );
  const tr = await runTrain([
    "--epochs",
    "1",
    "--results-dir",
    `${t.dir}/results`,
    "--resume-from",
    `${t.dir}/small_ckpt.safetensors`,
    "--run-name",
    "ft",
  ]);
  assert.equal(tr.code, 0, tr.stderr);
  assert.ok((await Deno.stat(`${t.dir}/results/ft/checkpoints/final_checkpoint.safetensors`)).isFile);
});
