import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { encodeCheckpoint, loadCheckpoint } from "../lib/train/checkpoint.ts";
import { runTrain, tempDir, TINY_TRAIN_ARGS, tinyPatchData } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const train = runTrain;

async function modelTensors(path: string) {
  const f = await readSafetensors(path);
  return Object.fromEntries(Object.entries(f.tensors).filter(([k]) => k.startsWith("model.")));
}

Deno.test("a run interrupted by SIGTERM mid-epoch and resumed with --resume-from auto ends with the same weights", async () => {
  await using a = await tempDir();
  await using b = await tempDir();
  const full = await train(["--epochs", "3", "--results-dir", a.dir, "--run-name", "r"]);
  assert.equal(full.code, 0, full.stderr);
  // 8 training batches per epoch here; stop after global step 10 (epoch 2, batch 2)
  const first = await train(["--epochs", "3", "--results-dir", b.dir, "--run-name", "r"], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "10",
  });
  assert.equal(first.code, 3, first.stderr);
  assert.match(first.stderr, /SIGTERM received/);
  const mid = await loadCheckpoint(`${b.dir}/r/checkpoints/latest_checkpoint.safetensors`);
  assert.equal(mid.state.epoch, 1);
  assert.ok(mid.state.step_in_epoch > 0, "stopped mid-epoch");
  const second = await train(["--epochs", "3", "--results-dir", b.dir, "--resume-from", "auto"]);
  assert.equal(second.code, 0, second.stderr);
  const w1 = await modelTensors(`${a.dir}/r/checkpoints/final_checkpoint.safetensors`);
  const w2 = await modelTensors(`${b.dir}/r/checkpoints/final_checkpoint.safetensors`);
  assert.deepEqual(Object.keys(w2), Object.keys(w1));
  for (const k of Object.keys(w1)) assert.deepEqual(w2[k].data, w1[k].data, `${k} differs after the resume`);
  const h1 = JSON.parse(await Deno.readTextFile(`${a.dir}/r/loss_history.json`));
  const h2 = JSON.parse(await Deno.readTextFile(`${b.dir}/r/loss_history.json`));
  assert.deepEqual(h2.train_losses, h1.train_losses);
  assert.deepEqual(h2.val_losses, h1.val_losses);
  assert.equal(h2.sessions.length, 2);
});

Deno.test("after two resumes the loss history holds each epoch once, and the curves mark the resume points", async () => {
  await using t = await tempDir();
  const r1 = await train(["--epochs", "2", "--results-dir", t.dir, "--run-name", "h"]);
  assert.equal(r1.code, 0, r1.stderr);
  const r2 = await train(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "19",
  });
  assert.equal(r2.code, 3, r2.stderr);
  const r3 = await train(["--epochs", "4", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(r3.code, 0, r3.stderr);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/h/loss_history.json`));
  assert.equal(h.train_losses.length, 4);
  assert.equal(h.val_losses.length, 4);
  assert.equal(h.total_epochs, 4);
  assert.equal(h.sessions.length, 3);
  assert.deepEqual(h.sessions.map((x: { first_epoch: number }) => x.first_epoch), [1, 3, 3]);
  const metrics = (await Deno.readTextFile(`${t.dir}/h/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(metrics.map((m) => m.epoch), [1, 2, 3, 4]);
  const png = await Deno.readFile(`${t.dir}/h/training_curves.png`);
  assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(png.buffer);
  assert.equal(String.fromCharCode(...png.subarray(12, 16)), "IHDR");
  assert.ok(view.getUint32(16) >= 640 && view.getUint32(20) >= 480);
  const svg = await Deno.readTextFile(`${t.dir}/h/training_curves.svg`);
  assert.match(svg, />epoch<\/text>/);
  assert.match(svg, /resumed \(epoch 3\)/);
  assert.match(svg, new RegExp(`best: epoch ${h.best.epoch}<`), "the best epoch is marked");
  // x-axis tick labels (centred, size 13) are whole epochs
  const xTicks = [...svg.matchAll(/font-size="13" text-anchor="middle" fill="[^"]+">([^<]+)</g)].map((m) =>
    m[1]
  );
  assert.ok(xTicks.length >= 2 && xTicks.every((v) => /^\d+$/.test(v)), `epoch ticks: ${xTicks}`);
  const html = await Deno.readTextFile(`${t.dir}/h/training_curves.html`);
  assert.match(html, /"name":"train loss"/);
  assert.match(html, /"name":"validation loss"/);
  assert.match(html, /resumed \(epoch 3\)/);
  assert.match(html, /Plotly\.newPlot/);
  assert.ok(!/<script src=/.test(html), "plotly is inlined, not loaded from the web");
});

Deno.test("the 4-5 MB HTML curves are written when a session ends, not after every epoch; SVG and PNG are", async () => {
  await using t = await tempDir();
  // 8 training batches per epoch here: killed during epoch 3, after two epochs were recorded
  const killed = await train(["--epochs", "4", "--results-dir", t.dir, "--run-name", "k"], {
    GINO_GW_TEST_SIGKILL_AFTER_STEP: "18",
  });
  assert.notEqual(killed.code, 0);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/k/loss_history.json`));
  assert.equal(h.total_epochs, 2);
  assert.match(await Deno.readTextFile(`${t.dir}/k/training_curves.svg`), /best: epoch/);
  assert.ok((await Deno.stat(`${t.dir}/k/training_curves.png`)).size > 10_000);
  await assert.rejects(Deno.stat(`${t.dir}/k/training_curves.html`), Deno.errors.NotFound);
  const done = await train(["--epochs", "4", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(done.code, 0, done.stderr);
  assert.match(await Deno.readTextFile(`${t.dir}/k/training_curves.html`), /Plotly\.newPlot/);
});

Deno.test("a corrupted or truncated checkpoint is refused with a clear message, and auto resume skips it", async () => {
  await using t = await tempDir();
  const r = await train([
    "--epochs",
    "2",
    "--results-dir",
    t.dir,
    "--run-name",
    "c",
    "--save-checkpoint-every",
    "1",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const latest = `${t.dir}/c/checkpoints/latest_checkpoint.safetensors`;
  const bytes = await Deno.readFile(latest);
  bytes[bytes.length - 100] ^= 0xff;
  await Deno.writeFile(latest, bytes);
  const bad = await train(["--epochs", "3", "--results-dir", t.dir, "--resume-from", latest]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /latest_checkpoint\.safetensors: SHA-256 of the file does not match/);
  const final = `${t.dir}/c/checkpoints/final_checkpoint.safetensors`;
  const fb = await Deno.readFile(final);
  await Deno.writeFile(final, fb.subarray(0, fb.length - 1000));
  const auto = await train(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stderr, /skipping .*latest_checkpoint\.safetensors: .*SHA-256/);
  assert.match(auto.stderr, /skipping .*final_checkpoint\.safetensors: .*truncated/);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/c/loss_history.json`));
  assert.equal(h.total_epochs, 3);
});

Deno.test("an incompatible resume is refused, naming the setting with its saved and current values", async () => {
  await using t = await tempDir();
  const r = await train(["--epochs", "1", "--results-dir", t.dir, "--run-name", "i"]);
  assert.equal(r.code, 0, r.stderr);
  const bad = await train([
    "--epochs",
    "2",
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
    "--fno-hidden-channels",
    "16",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--fno-hidden-channels: saved 8, now 16/);
  const data = await train([
    "--epochs",
    "2",
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
    "--val-ratio",
    "0.4",
  ]);
  assert.equal(data.code, 2);
  assert.match(data.stderr, /--val-ratio: saved 0.3, now 0.4/);
  assert.match(data.stderr, /--force-resume/);
});

Deno.test("a SIGKILL while a checkpoint is being written leaves the previous checkpoint loadable", async () => {
  await using t = await tempDir();
  const r = await train(["--epochs", "1", "--results-dir", t.dir, "--run-name", "k"]);
  assert.equal(r.code, 0, r.stderr);
  const dir = `${t.dir}/k/checkpoints`;
  const before = await loadCheckpoint(`${dir}/latest_checkpoint.safetensors`);
  // resume towards more epochs and kill the process as soon as a temporary checkpoint file appears
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}train.ts`,
      "--base-data-dir",
      await tinyPatchData(),
      ...TINY_TRAIN_ARGS,
      "--epochs",
      "50",
      "--results-dir",
      t.dir,
      "--resume-from",
      "auto",
    ],
    env: { GINO_GW_TEST_WRITE_DELAY_MS: "300" },
    stdout: "null",
    stderr: "null",
    cwd: ROOT,
  }).spawn();
  let killed = false;
  for (let i = 0; i < 3000 && !killed; i++) {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name.endsWith(".tmp")) {
        child.kill("SIGKILL");
        killed = true;
        break;
      }
    }
    if (!killed) await new Promise((res) => setTimeout(res, 5));
  }
  if (!killed) child.kill("SIGKILL");
  await child.status;
  assert.ok(killed, "a checkpoint write was caught in progress");
  const after = await loadCheckpoint(`${dir}/latest_checkpoint.safetensors`);
  assert.ok(after.state.epoch >= before.state.epoch);
  const resumed = await train([
    "--epochs",
    String(after.state.epoch + 1),
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
});

Deno.test("--time-limit stops with a resumable checkpoint and exit status 3", async () => {
  await using t = await tempDir();
  const r = await train([
    "--epochs",
    "500",
    "--results-dir",
    t.dir,
    "--run-name",
    "tl",
    "--time-limit",
    "6s",
  ]);
  assert.equal(r.code, 3, r.stderr);
  const c = await loadCheckpoint(`${t.dir}/tl/checkpoints/latest_checkpoint.safetensors`);
  assert.ok(c.state.epoch < 500);
  const log = await Deno.readTextFile(`${t.dir}/tl/train.log`);
  assert.match(log, /stopped by time limit/);
});

Deno.test("a NaN loss stops training with status 4 and keeps the last good checkpoint", async () => {
  await using t = await tempDir();
  const r = await train([
    "--epochs",
    "30",
    "--results-dir",
    t.dir,
    "--run-name",
    "n",
    "--learning-rate",
    "1e30",
  ]);
  assert.equal(r.code, 4, `exit ${r.code}: ${r.stderr}`);
  assert.match(r.stderr, /loss became (NaN|Infinity|-Infinity)/);
  try {
    const c = await loadCheckpoint(`${t.dir}/n/checkpoints/latest_checkpoint.safetensors`);
    const w = Object.values(c.file.tensors).filter((x) => x.dtype === "F32");
    for (const x of w) assert.ok((x.data as Float32Array).every(Number.isFinite), "saved weights are finite");
  } catch (e) {
    assert.match((e as Error).message, /checkpoint not found/);
  }
});

Deno.test("--checkpoint-dir puts checkpoints elsewhere, and --resume-from auto still finds them", async () => {
  await using t = await tempDir();
  const r = await train([
    "--epochs",
    "1",
    "--results-dir",
    `${t.dir}/res`,
    "--run-name",
    "cd",
    "--checkpoint-dir",
    `${t.dir}/ckpts`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await Deno.stat(`${t.dir}/ckpts/final_checkpoint.safetensors`)).isFile);
  const r2 = await train(["--epochs", "2", "--results-dir", `${t.dir}/res`, "--resume-from", "auto"]);
  assert.equal(r2.code, 0, r2.stderr);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/res/cd/loss_history.json`));
  assert.equal(h.total_epochs, 2);
  assert.equal(h.sessions.length, 2);
});

Deno.test("--backend tensorflow without the native package is a clear error, not a crash", async () => {
  await using t = await tempDir();
  const r = await train(["--epochs", "1", "--results-dir", t.dir, "--backend", "tensorflow"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--backend tensorflow needs @tensorflow\/tfjs-node-gpu .* or use --backend wasm/);
});

Deno.test("--residual-base fitted: the base is fitted once, saved in the checkpoint and kept by a resume", async () => {
  await using t = await tempDir();
  const args = ["--residual", "--residual-base", "fitted", "--results-dir", t.dir, "--run-name", "f"];
  const first = await train([...args, "--epochs", "1"]);
  assert.equal(first.code, 0, first.stderr);
  const c1 = await loadCheckpoint(`${t.dir}/f/checkpoints/latest_checkpoint.safetensors`);
  const fit = c1.state.residual_fit!;
  const tin = c1.state.config.data.inputWindow, tout = c1.state.config.data.outputWindow;
  assert.equal(fit.length, c1.state.config.data.targetCols.length * (tin + 1) * tout);
  assert.ok(fit.every(Number.isFinite));
  const second = await train(["--epochs", "2", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(second.code, 0, second.stderr);
  const c2 = await loadCheckpoint(`${t.dir}/f/checkpoints/latest_checkpoint.safetensors`);
  assert.equal(c2.state.epoch, 2);
  assert.deepEqual(c2.state.residual_fit, fit);
  const other = await train([
    "--epochs",
    "3",
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
    "--residual-base",
    "linear",
  ]);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /--residual-base: saved "fitted", now "linear"/);
});

Deno.test("a session that only closes the epoch its predecessor trained to the end, then stops, is recorded with its stop", async () => {
  await using t = await tempDir();
  // 8 training batches per epoch here: stopped after batch 5 of epoch 1
  const first = await train(["--epochs", "3", "--results-dir", t.dir, "--run-name", "e"], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "5",
  });
  assert.equal(first.code, 3, first.stderr);
  // as if the time limit had stopped it after the last batch, before validation (the saved state of that case)
  const path = `${t.dir}/e/checkpoints/latest_checkpoint.safetensors`;
  const ck = await loadCheckpoint(path);
  const batches = 8;
  ck.state.sampler.position = batches;
  ck.state.step_in_epoch = batches;
  ck.state.global_step = batches;
  const tensors = Object.fromEntries(
    Object.entries(ck.file.tensors).map(([k, v]) => [k, { shape: v.shape, data: v.data as Float32Array }]),
  );
  await Deno.writeFile(path, await encodeCheckpoint(tensors, ck.state));
  // the next session closes epoch 1 without a step, then its time limit stops it before epoch 2
  const second = await train([
    "--epochs",
    "3",
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
    "--time-limit",
    "0.05",
  ]);
  assert.equal(second.code, 3, second.stderr);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/e/loss_history.json`));
  assert.equal(h.total_epochs, 1);
  assert.equal(h.sessions.length, 2);
  assert.deepEqual([h.sessions[1].first_epoch, h.sessions[1].last_epoch], [1, 1]);
  assert.match(String(h.sessions[1].exit), /^stopped by time limit at epoch 1$/);
  assert.equal(h.sessions[1].exit_status, 3);
  const saved = await loadCheckpoint(path);
  assert.equal(saved.state.epoch, 1);
  assert.equal(
    saved.state.history.sessions[1].exit,
    h.sessions[1].exit,
    "the checkpoint holds the closed record",
  );
});

Deno.test("a SIGTERM while the trainer is still starting ends it with status 3 and a run that resumes", async () => {
  await using t = await tempDir();
  const root = new URL("../", import.meta.url).pathname;
  const args = [
    "run",
    "-A",
    `${root}train.ts`,
    "--base-data-dir",
    await tinyPatchData(),
    ...TINY_TRAIN_ARGS.filter((a) => a !== "--quiet"),
    "--epochs",
    "50",
    "--results-dir",
    t.dir,
    "--run-name",
    "early",
  ];
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).spawn();
  // the first line the trainer prints (it is already listening by then, though not yet training)
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  child.kill("SIGTERM");
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const status = await child.status;
  const err = await new Response(child.stderr).text();
  assert.equal(status.code, 3, `first line '${seen.trim()}', then SIGTERM: ${err}`);
  const more = await runTrain(["--epochs", "2", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(more.code, 0, more.stderr);
});

/** Relative path -> bytes of every file below `dir`. */
async function folderBytes(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`, `${rel}${e.name}/`);
      else {out.set(
          `${rel}${e.name}`,
          new TextDecoder("latin1").decode(await Deno.readFile(`${d}/${e.name}`)),
        );}
    }
  };
  await walk(dir, "");
  return out;
}

Deno.test("a run whose checkpoints are all damaged is refused, not trained over; auto never moves to another run", async () => {
  await using t = await tempDir();
  const base = ["--results-dir", t.dir, "--save-checkpoint-every", "1"];
  // an older run that verifies, then the newest run, whose every checkpoint gets damaged
  assert.equal((await train([...base, "--epochs", "1", "--run-name", "old"])).code, 0);
  const q = await train([...base, "--epochs", "2", "--run-name", "q"]);
  assert.equal(q.code, 0, q.stderr);
  const ckdir = `${t.dir}/q/checkpoints`;
  const files: string[] = [];
  for await (const e of Deno.readDir(ckdir)) files.push(e.name);
  assert.ok(files.length >= 3, `checkpoints: ${files}`);
  for (const f of files) await Deno.writeFile(`${ckdir}/${f}`, new Uint8Array([1, 2, 3, 4]));
  const before = await folderBytes(`${t.dir}/q`);
  const olderBefore = await folderBytes(`${t.dir}/old`);
  for (const name of [["--run-name", "q"], []]) {
    const r = await train([...base, "--epochs", "4", "--resume-from", "auto", ...name]);
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(r.stderr, /no checkpoint that verifies \(its history records 2 epoch/);
    for (const f of files) assert.ok(r.stderr.includes(`${ckdir}/${f}:`), `${f} not listed:\n${r.stderr}`);
    assert.match(r.stderr, /restore a checkpoint .* --resume-from PATH.* another --run-name/s);
    if (!name.length) assert.match(r.stderr, /stays on the newest run.*old/s);
    assert.doesNotMatch(r.stdout + r.stderr, /starting it|starting a new run|^new run|^resuming/m);
    // nothing in either run changed: the damaged run keeps its history, the older run was not trained on
    assert.deepEqual(await folderBytes(`${t.dir}/q`), before);
    assert.deepEqual(await folderBytes(`${t.dir}/old`), olderBefore);
  }
  // checkpoints deleted while the history records epochs: refused as well
  for (const f of files) await Deno.remove(`${ckdir}/${f}`);
  const gone = await train([...base, "--epochs", "4", "--resume-from", "auto", "--run-name", "q"]);
  assert.equal(gone.code, 2, gone.stderr);
  assert.match(gone.stderr, /a history of 2 epoch\(s\) but no checkpoint file/);
  // the way out the message gives: a new run under another name
  const fresh = await train([...base, "--epochs", "1", "--resume-from", "auto", "--run-name", "q2"]);
  assert.equal(fresh.code, 0, fresh.stderr);
});

Deno.test("the sparse-geometry warnings say what the per-patch lines measure: empty latent nodes or lonely points", async () => {
  await using t = await tempDir();
  for (
    const [args, says, not] of [
      [
        ["--latent-grid", "24", "--gno-radius", "0.15"],
        /most latent nodes have no point/,
        /many points have no/,
      ],
      [
        ["--latent-grid", "4", "--gno-radius", "0.05"],
        /many points have no latent node/,
        /most latent nodes/,
      ],
    ] as const
  ) {
    const r = await train(["--epochs", "1", "--results-dir", t.dir, "--run-name", args[1], ...args]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, says);
    assert.doesNotMatch(r.stderr, not);
    // each patch's share in the warning is the one its log line gives
    const log = await Deno.readTextFile(`${t.dir}/${args[1]}/train.log`);
    for (const [, name, share] of r.stderr.matchAll(/(patch_\d+) (\d+)%/g)) {
      const line = log.split("\n").find((l) => l.includes(`${name}:`))!;
      const key = says.source.includes("latent nodes have")
        ? "latent nodes without points"
        : "points without latent nodes";
      assert.ok(line.includes(`${key} ${share}%`), `${name} ${share}% against: ${line}`);
    }
  }
});
