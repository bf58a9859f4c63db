// The kill-and-resume soak: a run SIGKILLed at many moments (mid-step, while a checkpoint or another file is being
// written, right before and right after one is renamed into place, at random times) and stopped by SIGTERMs, each
// followed by `--resume-from auto`, ends exactly as an uninterrupted run, and every file it leaves tells the truth.
//
// The kill schedule is drawn from a seeded generator; replay or enlarge it by hand with
//   GINO_GW_SOAK_SEED=7 GINO_GW_SOAK_KILLS=200 GINO_GW_SOAK_EPOCHS=12 deno task test tests/soak_test.ts
import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { verifyCheckpointBytes } from "../lib/train/checkpoint.ts";
import type { TrainingState } from "../lib/train/checkpoint.ts";
import { KILLED } from "../lib/train/history.ts";
import { Rng } from "../lib/data/rng.ts";
import { tempDir, TINY_TRAIN_ARGS, tinyPatchData } from "./_helpers.ts";

const env = (k: string, d: number) => Number(Deno.env.get(k) ?? d);
const SEED = env("GINO_GW_SOAK_SEED", 1);
const KILLS = env("GINO_GW_SOAK_KILLS", 22);
const EPOCHS = env("GINO_GW_SOAK_EPOCHS", 10);
const ROOT = new URL("../", import.meta.url).pathname;
const ARGS = [
  ...TINY_TRAIN_ARGS.filter((a) => a !== "--quiet"),
  "--epochs",
  String(EPOCHS),
  "--save-checkpoint-every",
  "2",
];

interface Launch {
  /** What was done to the process: a kill point, a step, a delay, or none. */
  plan: string;
  code: number;
  stdout: string;
  /** Furthest valid checkpoint (epoch, step) before and after. */
  before: [number, number];
  after: [number, number];
}

/** Starts train.ts; applies `plan`'s kill (by environment hook or timer); waits for its end. */
async function launch(
  results: string,
  extra: string[],
  plan: string,
  hookEnv: Record<string, string>,
  delayMs?: number,
) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}train.ts`,
      "--base-data-dir",
      await tinyPatchData(),
      ...ARGS,
      "--results-dir",
      results,
      ...extra,
    ],
    env: hookEnv,
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).spawn();
  const timer = delayMs === undefined ? undefined : setTimeout(() => child.kill("SIGKILL"), delayMs);
  const out = await child.output();
  clearTimeout(timer);
  return {
    plan,
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
  };
}

/** The furthest intact checkpoint of a run folder: [epoch, step in epoch, global step]. */
async function furthest(dir: string): Promise<[number, number, number]> {
  let best: [number, number, number] = [0, 0, 0];
  for (
    const e of (() => {
      try {
        return [...Deno.readDirSync(dir)];
      } catch {
        return [];
      }
    })()
  ) {
    if (!e.name.endsWith(".safetensors")) continue;
    const v = await verifyCheckpointBytes(await Deno.readFile(`${dir}/${e.name}`), e.name);
    if (!v.ok) continue;
    const s = v.state as TrainingState;
    if (s.epoch > best[0] || (s.epoch === best[0] && s.step_in_epoch > best[1])) {
      best = [s.epoch, s.step_in_epoch, s.global_step];
    }
  }
  return best;
}

async function tensorBytes(path: string): Promise<Record<string, Uint8Array>> {
  const f = await readSafetensors(path);
  return Object.fromEntries(
    Object.entries(f.tensors).map((
      [k, t],
    ) => [k, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]),
  );
}

interface Plan {
  plan: string;
  env: Record<string, string>;
  delayMs?: number;
  sigterm?: boolean;
}

/** Draws the next kill: mostly at file writes (during, before or after the rename), some mid-step, some timed. */
function drawPlan(
  rng: Rng,
  at: [number, number, number],
  launchNo: number,
  state: { finalDone: boolean; bestDone: boolean },
  stepsPerEpoch: number,
): Plan {
  const pick = <T>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)];
  const [epoch, , gs] = at;
  // the two moments the checks must include: between the best epoch's epoch file and best_checkpoint, and the final writes
  if (!state.bestDone && epoch === 1) {
    state.bestDone = true;
    return { plan: "after:checkpoint_epoch:1", env: { GINO_GW_TEST_KILL_AT: "after:checkpoint_epoch:1" } };
  }
  if (!state.finalDone && epoch === EPOCHS - 1) {
    state.finalDone = true;
    const when = pick(["during", "before", "after"]);
    return { plan: `${when}:final:1`, env: { GINO_GW_TEST_KILL_AT: `${when}:final:1` } };
  }
  // steps left before the last one (a step hook at the very last step would kill before the final writes)
  const left = Math.max(1, EPOCHS * stepsPerEpoch - gs - 1);
  const ahead = () => gs + 1 + Math.floor(rng.next() * Math.min(stepsPerEpoch / 2, left));
  if (launchNo % 6 === 5) {
    const step = ahead();
    return {
      plan: `SIGTERM after step ${step}`,
      env: { GINO_GW_TEST_SIGTERM_AFTER_STEP: String(step) },
      sigterm: true,
    };
  }
  const r = rng.next();
  if (r < 0.6) {
    // a kill at a file write, with a step kill as backstop in case that write does not come before the end
    const file = pick(["latest", "best", "checkpoint_epoch", "loss_history", "training_curves", "config"]);
    const spec = `${pick(["during", "before", "after"])}:${file}:${1 + Math.floor(rng.next() * 2)}`;
    const backstop = String(ahead() + stepsPerEpoch / 2);
    return { plan: spec, env: { GINO_GW_TEST_KILL_AT: spec, GINO_GW_TEST_SIGKILL_AFTER_STEP: backstop } };
  }
  if (r < 0.85) {
    const step = ahead();
    return { plan: `SIGKILL after step ${step}`, env: { GINO_GW_TEST_SIGKILL_AFTER_STEP: String(step) } };
  }
  const ms = 150 + Math.floor(rng.next() * 700);
  return {
    plan: `SIGKILL at ${ms} ms`,
    env: { GINO_GW_TEST_SIGKILL_AFTER_STEP: String(gs + left) },
    delayMs: ms,
  };
}

Deno.test(`soak: at least ${KILLS} kills and some SIGTERMs at seeded moments (seed ${SEED}), each resumed, end as an uninterrupted run`, async () => {
  await using t = await tempDir();
  const ref = await launch(`${t.dir}/ref`, ["--run-name", "r"], "none", {});
  assert.equal(ref.code, 0, ref.stdout);
  const stepsPerEpoch = (await furthest(`${t.dir}/ref/r/checkpoints`))[2] / EPOCHS;
  const res = `${t.dir}/soak`, run = `${res}/r`, ckpts = `${run}/checkpoints`;
  const rng = new Rng(SEED);
  const launches: (Launch & { sigterm?: boolean })[] = [];
  const state = { finalDone: false, bestDone: false };
  let kills = 0;
  const fail = (msg: string) =>
    `${msg}\nreplay: GINO_GW_SOAK_SEED=${SEED} GINO_GW_SOAK_KILLS=${KILLS} GINO_GW_SOAK_EPOCHS=${EPOCHS}\n` +
    launches.map((l, i) => `${i}: ${l.plan} -> exit ${l.code}, ${l.before} -> ${l.after}`).join("\n");
  // until the run is complete (the final writes are killed too); each launch gets a kill or a SIGTERM
  for (let i = 0; i < KILLS * 4; i++) {
    const before = await furthest(ckpts);
    if (before[0] >= EPOCHS) break;
    const p = drawPlan(rng, before, launches.length, state, stepsPerEpoch);
    const extra = ["--run-name", "r", "--resume-from", "auto"];
    const r = await launch(res, extra, p.plan, p.env, p.delayMs);
    const after = await furthest(ckpts);
    launches.push({ ...r, before: [before[0], before[1]], after: [after[0], after[1]], sigterm: p.sigterm });
    assert.ok([0, 3, 137].includes(r.code), fail(`unexpected exit ${r.code}:\n${r.stdout}`));
    if (r.code === 137) kills++;
    if (p.sigterm && r.code !== 0) assert.equal(r.code, 3, fail(r.stdout));
    // a restart resumes from the furthest intact checkpoint
    const m = / from \S+ \(epoch (\d+)(?:, batch (\d+))?\) towards/.exec(r.stdout);
    if (m) {
      assert.deepEqual(
        [Number(m[1]), Number(m[2] ?? 0)],
        [before[0], before[1]],
        fail(`launch ${launches.length - 1} did not resume from the furthest checkpoint`),
      );
    }
    assert.ok(
      after[0] > before[0] || (after[0] === before[0] && after[1] >= before[1]),
      fail("progress went backwards"),
    );
  }
  assert.ok(
    kills >= KILLS,
    fail(`only ${kills} kills happened before the run completed: raise GINO_GW_SOAK_EPOCHS`),
  );
  // finish without kills
  for (let i = 0; i < 3; i++) {
    const before = await furthest(ckpts);
    const r = await launch(res, ["--resume-from", "auto"], "none", {});
    assert.equal(r.code, 0, fail(r.stdout));
    const after = await furthest(ckpts);
    launches.push({ ...r, before: [before[0], before[1]], after: [after[0], after[1]] });
    if (/nothing to do/.test(r.stdout)) break;
  }

  // the checkpoints: the same names, and model and optimiser bitwise those of the uninterrupted run
  const names = (d: string) => [...Deno.readDirSync(d)].map((e) => e.name).sort();
  assert.deepEqual(names(ckpts), names(`${t.dir}/ref/r/checkpoints`));
  for (const f of names(ckpts)) {
    const [a, b] = [await tensorBytes(`${t.dir}/ref/r/checkpoints/${f}`), await tensorBytes(`${ckpts}/${f}`)];
    for (const k of Object.keys(a)) {
      assert.deepEqual(b[k], a[k], fail(`${f}: ${k} differs from the uninterrupted run`));
    }
  }
  // nothing left behind
  assert.deepEqual(names(run).filter((n) => n.endsWith(".tmp") || n === ".running"), []);
  assert.deepEqual(names(ckpts).filter((n) => n.endsWith(".tmp")), []);
  // the history: every epoch once, the same losses
  const [h, hr] = [
    JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`)),
    JSON.parse(await Deno.readTextFile(`${t.dir}/ref/r/loss_history.json`)),
  ];
  assert.deepEqual(h.train_losses, hr.train_losses);
  assert.deepEqual(h.val_losses, hr.val_losses);
  assert.deepEqual(h.best, hr.best);
  const metrics = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(metrics.map((m) => m.epoch), [...Array(EPOCHS).keys()].map((e) => e + 1));
  assert.deepEqual(metrics.map((m) => m.train_loss), hr.train_losses);
  const log = await Deno.readTextFile(`${run}/train.log`);
  for (let e = 1; e <= EPOCHS; e++) assert.match(log, new RegExp(` epoch ${e}/${EPOCHS}  train `));
  // sessions: exactly the launches that saved progress, in order, each once, with its true end
  const advanced = launches.filter((l) =>
    l.after[0] > l.before[0] || (l.after[0] === l.before[0] && l.after[1] > l.before[1])
  );
  const sessions = h.sessions as {
    start: string;
    end: string | null;
    exit: string;
    exit_status: number | null;
  }[];
  assert.equal(new Set(sessions.map((s) => s.start)).size, sessions.length, "each session once");
  assert.equal(sessions.length, advanced.length, fail("sessions recorded != launches that saved progress"));
  sessions.forEach((s, i) => {
    const l = advanced[i];
    assert.ok(s.end !== null && s.end >= s.start, `session ${i} has its end`);
    if (l.after[0] >= EPOCHS) {
      assert.equal(s.exit_status, 0, fail(`session ${i} (${l.plan}) completed the run`));
    } else if (l.code === 3) {
      assert.equal(s.exit_status, 3);
      assert.match(s.exit, /^stopped by SIGTERM/);
    } else {
      assert.equal(l.code, 137);
      assert.equal(s.exit, KILLED, fail(`session ${i} (${l.plan})`));
      assert.equal(s.exit_status, null);
    }
  });
  console.log(
    `soak: ${launches.length} launches, ${kills} kills, ${
      launches.filter((l) => l.code === 3).length
    } SIGTERM stops, ` +
      `${sessions.length} sessions recorded`,
  );
});
