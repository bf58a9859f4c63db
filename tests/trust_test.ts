// A run's files tell the truth after kills at the worst moments: checkpoints are whole-file checked, and a resume
// completes what a killed session left unwritten (special checkpoints, history, metrics, log, session records).
import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { loadCheckpoint, verifyCheckpointBytes } from "../lib/train/checkpoint.ts";
import { KILLED } from "../lib/train/history.ts";
import { FIXTURES, runScript, runTrain, tempDir } from "./_helpers.ts";
import { Rng } from "../lib/data/rng.ts";
import { RunLock } from "../lib/train/runlock.ts";
import { runLayout } from "../lib/train/layout.ts";

const ckpt = (args: string[]) => runScript("manage_checkpoints.ts", args);
const EVERY = ["--save-checkpoint-every", "1"];

/** Model and optimiser tensors of a checkpoint, by name. */
async function tensors(path: string): Promise<Record<string, Uint8Array>> {
  const f = await readSafetensors(path);
  return Object.fromEntries(
    Object.entries(f.tensors).map((
      [k, t],
    ) => [k, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
}

async function assertSameTensors(a: string, b: string): Promise<void> {
  const [ta, tb] = [await tensors(a), await tensors(b)];
  assert.deepEqual(Object.keys(tb), Object.keys(ta), `${b}: tensor names`);
  for (const k of Object.keys(ta)) assert.deepEqual(tb[k], ta[k], `${b}: ${k} differs from ${a}`);
}

const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
const history = async (run: string) => JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`));
const metricsEpochs = async (run: string) =>
  (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) => JSON.parse(l).epoch);

Deno.test("a changed byte anywhere in a checkpoint fails verify and load; auto resume falls back with a warning", async () => {
  await using t = await tempDir();
  const r = await runTrain(["--epochs", "2", "--results-dir", t.dir, "--run-name", "b", ...EVERY]);
  assert.equal(r.code, 0, r.stderr);
  const latest = `${t.dir}/b/checkpoints/latest_checkpoint.safetensors`;
  const bytes = await Deno.readFile(latest);
  assert.ok((await verifyCheckpointBytes(bytes, latest)).ok);
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  // every byte of the length and of the header (metadata, tensor names, offsets), and bytes all over the data
  const rng = new Rng(7);
  const positions = [...Array(8 + headerLen).keys()];
  for (let i = 0; i < 200; i++) {
    positions.push(8 + headerLen + Math.floor(rng.next() * (bytes.length - 8 - headerLen)));
  }
  const missed: number[] = [];
  for (const p of positions) {
    const bit = 1 << Math.floor(rng.next() * 8);
    bytes[p] ^= bit;
    if ((await verifyCheckpointBytes(bytes, latest)).ok) missed.push(p);
    bytes[p] ^= bit;
  }
  assert.deepEqual(missed, [], "flipped bits that verify did not catch");
  assert.ok((await verifyCheckpointBytes(bytes, latest)).ok, "verify leaves the bytes as they were");

  // the training state's epoch changed from 2 to 3, as in a real bit flip of '2' (0x32) to '3' (0x33)
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const at = text.indexOf('\\"epoch\\":2,');
  assert.ok(at > 0);
  bytes[8 + at + 10] ^= 0x01;
  await Deno.writeFile(latest, bytes);
  const v = await ckpt(["verify", latest]);
  assert.equal(v.code, 1, v.stdout);
  assert.match(v.stdout, /FAILED .*latest_checkpoint\.safetensors: SHA-256 of the file does not match/);
  const direct = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", latest]);
  assert.equal(direct.code, 2);
  assert.match(
    direct.stderr,
    /^error: .*latest_checkpoint\.safetensors: SHA-256 of the file does not match/m,
  );
  await assert.rejects(() => loadCheckpoint(latest), /SHA-256 of the file does not match/);
  const auto = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(auto.code, 0, auto.stderr);
  assert.match(auto.stderr, /warning: skipping .*latest_checkpoint\.safetensors: SHA-256 of the file/);
  const h = await history(`${t.dir}/b`);
  assert.equal(h.total_epochs, 3);
  assert.ok(h.train_losses.every(Number.isFinite) && h.val_losses.every(Number.isFinite));
  assert.equal((await loadCheckpoint(latest)).state.epoch, 3, "latest is rewritten by the resumed session");
});

Deno.test("a kill during the last epoch's writes: the resume completes final, latest, history and metrics, then says done", async () => {
  await using t = await tempDir();
  const full = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--run-name", "full", ...EVERY]);
  assert.equal(full.code, 0, full.stderr);
  for (const when of ["during", "before", "after"]) {
    const rd = ["--results-dir", `${t.dir}/${when}`];
    const run = `${t.dir}/${when}/k`;
    const killed = await runTrain(["--epochs", "3", ...rd, "--run-name", "k", ...EVERY], {
      GINO_GW_TEST_KILL_AT: `${when}:final:1`,
    });
    assert.equal(killed.code, 137, `${when}: killed`);
    const resumed = await runTrain(["--epochs", "3", ...rd, "--resume-from", "auto"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const out = await Deno.readTextFile(`${run}/train.log`);
    assert.match(out, /completed the checkpoint writes a killed session left undone: .*latest_checkpoint/);
    assert.match(out, /nothing to do: the run already has 3 epochs/);
    assert.deepEqual(names(`${run}/checkpoints`), names(`${t.dir}/full/checkpoints`), `${when}: files`);
    for (const f of names(`${t.dir}/full/checkpoints`)) {
      await assertSameTensors(`${t.dir}/full/checkpoints/${f}`, `${run}/checkpoints/${f}`);
    }
    assert.equal((await loadCheckpoint(`${run}/checkpoints/latest_checkpoint.safetensors`)).state.epoch, 3);
    const [h, hf] = [await history(run), await history(`${t.dir}/full`)];
    assert.deepEqual(h.train_losses, hf.train_losses);
    assert.deepEqual(h.val_losses, hf.val_losses);
    assert.equal(h.sessions.length, 1, "the resume trained nothing: not a session");
    assert.equal(h.sessions[0].exit, "completed");
    assert.deepEqual(await metricsEpochs(run), [1, 2, 3]);
    assert.ok(!names(`${run}/checkpoints`).some((n) => n.endsWith(".tmp")));
    // the run is whole now: another resume repairs nothing
    const again = await runTrain(["--epochs", "3", ...rd, "--resume-from", "auto"]);
    assert.equal(again.code, 0, again.stderr);
    const log2 = (await Deno.readTextFile(`${run}/train.log`)).split("nothing to do")[1];
    assert.ok(!/completed the checkpoint writes/.test(log2 ?? ""), "nothing left to repair");
  }
});

Deno.test("best_checkpoint holds the best epoch and latest the newest after a kill between the epoch file and best", async () => {
  await using t = await tempDir();
  const run = `${t.dir}/bst`;
  // epoch 2 improves on epoch 1 here; kill right after checkpoint_epoch_0002 is in place
  const k = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--run-name", "bst", ...EVERY], {
    GINO_GW_TEST_KILL_AT: "after:checkpoint_epoch:2",
  });
  assert.equal(k.code, 137);
  assert.equal((await loadCheckpoint(`${run}/checkpoints/best_checkpoint.safetensors`)).state.epoch, 1);
  const r = await runTrain(["--epochs", "2", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(r.code, 0, r.stderr);
  const e2 = await loadCheckpoint(`${run}/checkpoints/checkpoint_epoch_0002.safetensors`);
  assert.equal(e2.state.best.epoch, 2);
  for (const f of ["best_checkpoint", "latest_checkpoint"]) {
    const c = await loadCheckpoint(`${run}/checkpoints/${f}.safetensors`);
    assert.equal(c.state.epoch, 2, `${f} holds epoch 2`);
    await assertSameTensors(e2.path, c.path);
  }
  assert.deepEqual(await metricsEpochs(run), [1, 2]);
  const log = await Deno.readTextFile(`${run}/train.log`);
  assert.match(
    log,
    /epoch 2\/3 .*\(logged at a resume: the session that trained this epoch was killed before logging it\)/,
  );
});

Deno.test("every session keeps its true record: stopped, killed, completed, and a later resume changes none", async () => {
  await using t = await tempDir();
  const run = `${t.dir}/s`;
  // 8 batches per epoch: SIGTERM in epoch 2, then SIGKILL in epoch 3, then finish, then extend the finished run
  const a = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--run-name", "s", ...EVERY], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "10",
  });
  assert.equal(a.code, 3, a.stderr);
  const hint = `continue with deno task train --resume-from auto --results-dir ${t.dir}`;
  assert.ok(
    (await Deno.readTextFile(`${run}/train.log`)).includes(hint),
    "the hint names the results folder",
  );
  const dry = await runTrain(["--dry-run", "--json", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(
    { ...JSON.parse(dry.stdout).resume, checkpoint: undefined },
    { checkpoint: undefined, epoch: 1, step_in_epoch: 2 },
    "the dry run says which checkpoint a resume would start from",
  );
  const b = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"], {
    GINO_GW_TEST_SIGKILL_AFTER_STEP: "20",
  });
  assert.equal(b.code, 137);
  const c = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(c.code, 0, c.stderr);
  let h = await history(run);
  assert.equal(h.sessions.length, 3);
  const [s1, s2, s3] = h.sessions;
  assert.match(s1.exit, /^stopped by SIGTERM at epoch 1 \+ 2 batches/);
  assert.equal(s1.exit_status, 3);
  assert.ok(s1.end && s1.end >= s1.start);
  assert.equal(s2.exit, KILLED);
  assert.equal(s2.exit_status, null);
  assert.ok(
    s2.end && s2.end >= s2.start && s2.end <= s3.start,
    "a killed session ends at its last sign of life",
  );
  assert.equal(s3.exit, "completed");
  assert.equal(s3.exit_status, 0);
  assert.deepEqual(h.sessions.map((s: { first_epoch: number }) => s.first_epoch), [1, 2, 3]);
  // the checkpoints hold the same records as loss_history.json
  const final = await loadCheckpoint(`${run}/checkpoints/final_checkpoint.safetensors`);
  assert.deepEqual(final.state.history.sessions, h.sessions);
  const d = await runTrain(["--epochs", "4", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(d.code, 0, d.stderr);
  h = await history(run);
  assert.equal(h.sessions.length, 4);
  assert.deepEqual(h.sessions.slice(0, 3), [s1, s2, s3], "earlier sessions unchanged");
  assert.equal(h.sessions[3].exit, "completed");
});

Deno.test("a resume rebuilds missing metrics and log lines and removes stale temporary files, never a live session's", async () => {
  await using t = await tempDir();
  const run = `${t.dir}/d`;
  const k = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--run-name", "d", ...EVERY], {
    GINO_GW_TEST_KILL_AT: "after:latest:2",
  });
  assert.equal(k.code, 137);
  const stale = `${run}/checkpoints/latest_checkpoint.safetensors.999999.abcdef.tmp`;
  await Deno.writeTextFile(stale, "left by a killed writer");
  await Deno.writeTextFile(`${run}/metrics.jsonl`, '{"epoch":1,"train_lo', { append: true }); // a torn line
  // while another live session holds the run, a resume is refused and touches nothing
  const { lock } = await RunLock.acquire(runLayout(run), new Date().toISOString(), () => {});
  const busy = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"]);
  lock.release();
  assert.equal(busy.code, 2);
  assert.match(busy.stderr, /^error: .*\/d is being trained by process \d+ .*; two sessions on one run/m);
  assert.ok(
    names(`${run}/checkpoints`).includes(stale.split("/").pop()!),
    "nothing removed while the run is held",
  );
  const r = await runTrain(["--epochs", "3", "--results-dir", t.dir, "--resume-from", "auto"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!names(`${run}/checkpoints`).some((n) => n.endsWith(".tmp")), "stale temporary files removed");
  assert.deepEqual(await metricsEpochs(run), [1, 2, 3]);
  const lines = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.equal(lines[1].rebuilt, true);
  const h = await history(run);
  assert.equal(lines[1].train_loss, h.train_losses[1]);
  assert.equal(lines[1].val_loss, h.val_losses[1]);
  const log = await Deno.readTextFile(`${run}/train.log`);
  for (const e of [1, 2, 3]) assert.match(log, new RegExp(` epoch ${e}/3  train `));
});

Deno.test("--checkpoint-dir: ckpt verify and clean of the run act on the checkpoints where they are", async () => {
  await using t = await tempDir();
  const r = await runTrain([
    "--epochs",
    "3",
    "--results-dir",
    `${t.dir}/res`,
    "--run-name",
    "cd",
    "--checkpoint-dir",
    `${t.dir}/elsewhere`,
    ...EVERY,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const v = await ckpt(["verify", "cd", "--results-dir", `${t.dir}/res`]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
  assert.equal(v.stdout.trim().split("\n").length, 6);
  assert.match(v.stdout, new RegExp(`OK +${t.dir}/elsewhere/checkpoint_epoch_0001`));
  const c = JSON.parse((await ckpt(["clean", `${t.dir}/res/cd`, "1", "--dry-run", "--json"])).stdout);
  assert.deepEqual(c.deleted, ["checkpoint_epoch_0002.safetensors", "checkpoint_epoch_0001.safetensors"]);
  const p = await runScript("predict.ts", [
    `${t.dir}/elsewhere/best_checkpoint.safetensors`,
    "--no-figures",
    "--no-csv",
  ]);
  assert.equal(p.code, 0, p.stderr);
  assert.ok(
    names(`${t.dir}/res/cd`).includes("predictions_best_checkpoint"),
    "predict writes into the run folder",
  );
});

Deno.test("ckpt list tells running, finished, stopped, failed and crashed runs apart", async () => {
  await using t = await tempDir();
  const rd = ["--results-dir", t.dir];
  assert.equal((await runTrain(["--epochs", "2", ...rd, "--run-name", "fin"])).code, 0);
  assert.equal(
    (await runTrain(["--epochs", "3", ...rd, "--run-name", "stop"], {
      GINO_GW_TEST_SIGTERM_AFTER_STEP: "10",
    })).code,
    3,
  );
  assert.equal(
    (await runTrain(["--epochs", "3", ...rd, "--run-name", "nan", "--learning-rate", "1e30"])).code,
    4,
  );
  assert.equal(
    (await runTrain(["--epochs", "3", ...rd, "--run-name", "kill"], {
      GINO_GW_TEST_SIGKILL_AFTER_STEP: "10",
    })).code,
    137,
  );
  assert.equal(
    (await runTrain(["--epochs", "3", ...rd, "--run-name", "early"], {
      GINO_GW_TEST_SIGKILL_AFTER_STEP: "3",
    })).code,
    137,
  );
  // a live session: the run held by a running process (this test's)
  await Deno.mkdir(`${t.dir}/live/checkpoints`, { recursive: true });
  await Deno.copyFile(`${t.dir}/fin/config.json`, `${t.dir}/live/config.json`);
  const { lock } = await RunLock.acquire(runLayout(`${t.dir}/live`), new Date().toISOString(), () => {});
  const list = JSON.parse((await ckpt(["list", ...rd, "--json"])).stdout);
  lock.release();
  const state = Object.fromEntries(list.map((r: { run: string; state: string }) => [r.run, r.state]));
  assert.deepEqual(state, {
    fin: "finished",
    stop: "stopped",
    nan: "failed",
    kill: "crashed",
    early: "crashed",
    live: "running",
  });
  const byRun = Object.fromEntries(list.map((r: { run: string }) => [r.run, r]));
  assert.match(byRun.kill.last_exit, /killed: process \d+ .* is gone/);
  assert.match(byRun.nan.last_exit, /loss became/);
  const text = (await ckpt(["list", ...rd])).stdout;
  assert.match(text, /stop\s+1\/3\s.*\sstopped/);
});

Deno.test("ckpt export and import refuse to overwrite a file unless --force", async () => {
  await using t = await tempDir();
  assert.equal((await runTrain(["--epochs", "1", "--results-dir", t.dir, "--run-name", "x"])).code, 0);
  const src = `${t.dir}/x/checkpoints/final_checkpoint.safetensors`;
  const out = `${t.dir}/weights.safetensors`;
  await Deno.writeTextFile(out, "precious");
  const e = await ckpt(["export", src, out]);
  assert.equal(e.code, 2);
  assert.match(e.stderr, /^error: .*weights\.safetensors exists already; not overwriting it .*--force/);
  assert.equal(await Deno.readTextFile(out), "precious");
  assert.equal((await ckpt(["export", src, out, "--force"])).code, 0);
  const cfg = `${FIXTURES}gino-golden-small/config.json`;
  const target = `${t.dir}/start.safetensors`;
  await Deno.writeTextFile(target, "precious");
  const i = await ckpt([
    "import",
    `${FIXTURES}gino-golden-small/weights.safetensors`,
    "--config",
    cfg,
    "--out",
    target,
  ]);
  assert.equal(i.code, 2);
  assert.match(i.stderr, /start\.safetensors exists already/);
  assert.equal(await Deno.readTextFile(target), "precious");
});

Deno.test("a checkpoint of the first format (made by an earlier version) verifies, shows and resumes", async () => {
  await using t = await tempDir();
  await Deno.mkdir(`${t.dir}/v1run/checkpoints`, { recursive: true });
  for (
    const f of [
      "config.json",
      "loss_history.json",
      "metrics.jsonl",
      "train.log",
      "checkpoints/latest_checkpoint.safetensors",
    ]
  ) {
    await Deno.copyFile(`${FIXTURES}run-v1/v1run/${f}`, `${t.dir}/v1run/${f}`);
  }
  const path = `${t.dir}/v1run/checkpoints/latest_checkpoint.safetensors`;
  const c = await loadCheckpoint(path);
  assert.equal(c.state.format, "gino-gw checkpoint v1");
  assert.equal(c.state.epoch, 1);
  assert.equal(c.state.step_in_epoch, 2);
  assert.equal((await ckpt(["verify", path])).code, 0);
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 3] ^= 4;
  assert.ok(
    !(await verifyCheckpointBytes(bytes, path)).ok,
    "the first format's data hash still catches damage",
  );
  // the run was made on data of the same recipe in another temporary folder: resume it there
  const r = await runTrain([
    "--epochs",
    "3",
    "--results-dir",
    t.dir,
    "--resume-from",
    "auto",
    "--force-resume",
  ]);
  assert.equal(r.code, 0, r.stderr);
  const h = await history(`${t.dir}/v1run`);
  assert.equal(h.total_epochs, 3);
  assert.equal(h.sessions.length, 2);
  assert.match(
    h.sessions[0].exit,
    /^stopped by SIGTERM/,
    "the first session's end is taken from its history file",
  );
  assert.equal(
    (await loadCheckpoint(`${t.dir}/v1run/checkpoints/final_checkpoint.safetensors`)).state.format,
    "gino-gw checkpoint v2",
  );
});
