// The learning-rate schedule: the cosine schedule's shape, the reference's exponential schedule exactly, their
// state across a resume (bitwise), and --time-budget.
import assert from "node:assert/strict";
import {
  applyBudgetPlan,
  freshSchedule,
  lrAt,
  planTimeBudget,
  resumeSchedule,
  stepSchedule,
} from "../lib/train/schedule.ts";
import { modelBytes, runTrain, tempDir } from "./_helpers.ts";

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));
const cosine = { lrSchedule: "cosine" as const, learningRate: 1e-3, lrWarmup: 0.1, lrFinal: 0.01 };

Deno.test("the cosine schedule warms up linearly, peaks, falls monotonically and ends at the final rate", () => {
  const s = freshSchedule(cosine, 200);
  assert.equal(s.warmup_steps, 20);
  const lrs = Array.from({ length: 230 }, (_, i) => lrAt(s, i));
  assert.ok(close(lrs[0], 1e-3 / 20), `first step ${lrs[0]}`);
  assert.ok(close(lrs[19], 1e-3), "the peak at the end of the warm-up");
  for (let i = 1; i < 20; i++) assert.ok(lrs[i] > lrs[i - 1], `warm-up rises at step ${i}`);
  for (let i = 21; i < 200; i++) assert.ok(lrs[i] < lrs[i - 1], `falls at step ${i}`);
  assert.ok(close(lrs[199], 1e-5), `the last planned step has the final rate: ${lrs[199]}`);
  assert.ok(lrs.slice(200).every((v) => close(v, 1e-5)), "and stays there");
  // halfway through the decay, halfway between peak and floor
  assert.ok(close(lrAt(s, 20 + (199 - 20) / 2), 1e-5 + (1e-3 - 1e-5) / 2, 1e-9));
  // no warm-up: the peak at once
  assert.ok(close(lrAt(freshSchedule({ ...cosine, lrWarmup: 0 }, 50), 0), 1e-3));
  // constant
  const c = freshSchedule({ ...cosine, lrSchedule: "constant" }, 50);
  assert.ok([0, 10, 49, 80].every((i) => lrAt(c, i) === 1e-3));
});

Deno.test("the exponential schedule is the reference's: x gamma every interval epochs, per epoch", () => {
  const s = freshSchedule({
    lrSchedule: "exponential",
    learningRate: 1e-3,
    lrWarmup: 0.05,
    lrFinal: 0.01,
    lrGamma: 0.5,
    lrSchedulerInterval: 2,
  }, 100);
  const lrs: number[] = [];
  for (let epoch = 1; epoch <= 5; epoch++) {
    lrs.push(lrAt(s, epoch * 7)); // every step of an epoch has the epoch's rate
    stepSchedule(s, epoch);
  }
  assert.deepEqual(lrs, [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4]);
  // a checkpoint of the first format (no kind) is exponential
  const old = { lr: 2e-4, base_lr: 1e-3, gamma: 0.95, interval: 5 };
  assert.equal(lrAt(old, 123), 2e-4);
});

Deno.test("a resume keeps the schedule; a new rate, kind or run length re-plans it and says so", () => {
  const s = freshSchedule(cosine, 100);
  const same = structuredClone(s);
  assert.deepEqual(resumeSchedule(same, cosine, false, 100), []);
  assert.deepEqual(same, s, "nothing changes on a plain resume");
  const longer = structuredClone(s);
  const changes = resumeSchedule(longer, cosine, false, 300);
  assert.ok(changes.some((c) => c.includes("100 -> 300")), changes.join("; "));
  assert.equal(longer.total_steps, 300);
  assert.equal(longer.warmup_steps, 30);
  const lower = structuredClone(s);
  resumeSchedule(lower, { ...cosine, learningRate: 1e-4 }, true, 100);
  assert.equal(lower.base_lr, 1e-4, "a rate given on a resume is the new peak");
  const exp = structuredClone(s);
  resumeSchedule(
    exp,
    { ...cosine, lrSchedule: "exponential", lrGamma: 0.9, lrSchedulerInterval: 1 },
    false,
    100,
  );
  assert.equal(exp.kind, "exponential");
  assert.equal(exp.gamma, 0.9);
});

Deno.test("a time budget becomes the whole epochs that fit, at least one, and sets the run's length", () => {
  // steps of 100 ms, 10 per epoch, 0.5 s validation, 0.5 s saving: 2 s per epoch
  const t = { stepMs: 100, stepsPerEpoch: 10, valMs: 500, saveMs: 500, spentSeconds: 0.4 };
  assert.equal(planTimeBudget(20, t).epochs, 10);
  assert.equal(planTimeBudget(21.9, t).epochs, 10);
  assert.equal(planTimeBudget(1, t).epochs, 1, "one epoch even when it does not fit");
  const s = freshSchedule(cosine, 50);
  applyBudgetPlan(s, cosine, planTimeBudget(20, t), 10);
  assert.equal(s.total_steps, 100);
  assert.ok(close(lrAt(s, 99), 1e-5));
});

/** The history of a run (losses, rates), its final weights, and its log. */
async function runOf(dir: string, name: string) {
  const h = JSON.parse(await Deno.readTextFile(`${dir}/${name}/loss_history.json`));
  return {
    history: { train: h.train_losses, val: h.val_losses, lrs: h.lrs },
    weights: await modelBytes(`${dir}/${name}/checkpoints/final_checkpoint.safetensors`),
    log: await Deno.readTextFile(`${dir}/${name}/train.log`),
  };
}

Deno.test("a run stopped mid-epoch and resumed follows the cosine schedule bitwise as if uninterrupted", async () => {
  await using t = await tempDir();
  const flags = ["--epochs", "4", "--run-name", "c", "--lr-warmup", "0.2", "--learning-rate", "3e-3"];
  assert.equal((await runTrain([...flags, "--results-dir", `${t.dir}/a`])).code, 0);
  const stopped = await runTrain([...flags, "--results-dir", `${t.dir}/b`], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "5",
  });
  assert.equal(stopped.code, 3, stopped.stderr);
  const resumed = await runTrain([
    "--epochs",
    "4",
    "--run-name",
    "c",
    "--results-dir",
    `${t.dir}/b`,
    "--resume-from",
    "auto",
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  const a = await runOf(`${t.dir}/a`, "c"), b = await runOf(`${t.dir}/b`, "c");
  assert.deepEqual(b.history, a.history, "losses and rates of every epoch");
  assert.deepEqual(b.weights, a.weights, "final weights bitwise");
  // the rate rose, then annealed to 1% of the peak at the last step
  const lrs: number[] = a.history.lrs;
  assert.equal(lrs.length, 4);
  assert.ok(close(lrs[3], 3e-5, 1e-9), `last epoch ends at the final rate: ${lrs}`);
  assert.ok(lrs[1] > lrs[2] && lrs[2] > lrs[3], `falls: ${lrs}`);
  assert.match(a.log, /learning rate: cosine: peak 0\.003 after \d+ warm-up steps, down to 0\.00003/);
});

Deno.test("--lr-schedule exponential gives each epoch the reference's rate, across a resume", async () => {
  await using t = await tempDir();
  const flags = [
    "--epochs",
    "4",
    "--lr-schedule",
    "exponential",
    "--lr-gamma",
    "0.5",
    "--lr-scheduler-interval",
    "1",
    "--run-name",
    "s",
  ];
  assert.equal((await runTrain([...flags, "--results-dir", `${t.dir}/a`])).code, 0);
  const stop = await runTrain([...flags, "--results-dir", `${t.dir}/b`], {
    GINO_GW_TEST_SIGTERM_AFTER_STEP: "12",
  });
  assert.equal(stop.code, 3, stop.stderr);
  const r = await runTrain(["--epochs", "4", "--results-dir", `${t.dir}/b`, "--resume-from", "auto"]);
  assert.equal(r.code, 0, r.stderr);
  const a = await runOf(`${t.dir}/a`, "s"), b = await runOf(`${t.dir}/b`, "s");
  assert.deepEqual(a.history.lrs, [1e-3, 5e-4, 2.5e-4, 1.25e-4]);
  assert.deepEqual(b.history, a.history);
  assert.deepEqual(b.weights, a.weights);
});

Deno.test("--time-budget plans the epochs from the first steps' times and anneals the rate at their end", async () => {
  await using t = await tempDir();
  const r = await runTrain(["--time-budget", "12s", "--results-dir", t.dir, "--run-name", "tb"]);
  assert.equal(r.code, 0, r.stderr);
  const run = await runOf(t.dir, "tb");
  const plan = /time budget 12 s: a step takes ~(\d+) ms; planned (\d+) epoch\(s\)/.exec(run.log);
  assert.ok(plan, run.log);
  const h = JSON.parse(await Deno.readTextFile(`${t.dir}/tb/loss_history.json`));
  const epochs = h.train_losses.length, seconds = h.epoch_seconds.reduce((a: number, b: number) => a + b, 0);
  const config = JSON.parse(await Deno.readTextFile(`${t.dir}/tb/config.json`)).settings;
  assert.equal(config.optim.epochs, epochs, "the plan's epochs are the run's target (a resume follows them)");
  assert.ok(epochs >= 2, `several epochs fit 12 s of the tiny model: ${epochs}`);
  const longest = Math.max(...h.epoch_seconds);
  assert.ok(seconds <= 12 + 2 * longest, `trained ${seconds.toFixed(1)} s for a 12 s budget`);
  assert.ok(close(h.lrs.at(-1), 1e-5, 1e-6), `annealed at the end: ${h.lrs.at(-1)}`);
  // a resume that asks for more epochs extends the plan
  const more = await runTrain([
    "--results-dir",
    t.dir,
    "--run-name",
    "tb",
    "--resume-from",
    "auto",
    "--epochs",
    String(epochs + 1),
  ]);
  assert.equal(more.code, 0, more.stderr);
  assert.equal(
    JSON.parse(await Deno.readTextFile(`${t.dir}/tb/loss_history.json`)).train_losses.length,
    epochs + 1,
  );
});
