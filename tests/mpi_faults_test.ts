// A rank that dies in an MPI run: one rank of a 2-rank training is SIGKILLed at seeded moments (as it enters an
// all-reduce or another collective, while the other waits in it; rank 0 while it writes a checkpoint; rank 1 while
// rank 0 writes one; at random times) and the launcher itself is SIGKILLed; each launch is then resumed with
// --resume-from auto. Every time, every process of the job is gone within a bound, the launcher does not report
// success, every checkpoint and history file left is whole, a resume starts from the furthest checkpoint, and the
// run ends bitwise equal to an uninterrupted 2-rank run. Both MPICH and Open MPI, where installed.
//
// Replay or enlarge by hand: GINO_GW_MPI_SOAK_SEED=7 GINO_GW_MPI_SOAK_KILLS=40 deno task test tests/mpi_faults_test.ts
import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { verifyCheckpointBytes } from "../lib/train/checkpoint.ts";
import type { TrainingState } from "../lib/train/checkpoint.ts";
import { Rng } from "../lib/data/rng.ts";
import { modelBytes, mpiTrainArgs, tempDir, TINY_TRAIN_ARGS, tinyPatchData, which } from "./_helpers.ts";

const env = (k: string, d: number) => Number(Deno.env.get(k) ?? d);
const SEED = env("GINO_GW_MPI_SOAK_SEED", 1);
const KILLS = env("GINO_GW_MPI_SOAK_KILLS", 10);
const EPOCHS = 32;
/**
 * Seconds within which every process of a job must be gone after a kill: measured 0.1 s under MPICH, and 2.1 s
 * under Open MPI (whose launcher waits odls_base_sigkill_timeout, 1 s here, before it kills the others); the
 * margin is for a loaded machine.
 */
const BOUND_S: Record<string, number> = { "MPICH": 5, "Open MPI": 10 };

const LAUNCHERS: [string, string[], Record<string, string>][] = [
  ["MPICH", ["mpiexec.mpich"], {}],
  ["Open MPI", ["mpiexec.openmpi", "--oversubscribe"], {
    OMPI_ALLOW_RUN_AS_ROOT: "1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
    OMPI_MCA_btl: "self,vader",
    // its launcher passes a SIGTERM on to the other ranks and SIGKILLs them this many seconds later
    OMPI_MCA_odls_base_sigkill_timeout: "1",
  }],
];

/**
 * The processes of this test's training (ranks), with their rank: by a marker in their arguments, the rank from
 * their environment (read by a shell: the tests run without access to /proc themselves).
 */
function ranks(marker: string): { pid: number; rank: number }[] {
  const script = `for p in $(pgrep -f -- "$1"); do
  c=$(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null)
  case "$c" in *mpiexec*|*mpirun*|*hydra*|*orted*) continue ;; esac
  r=$(tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | sed -n -e 's/^PMI_RANK=//p' -e 's/^OMPI_COMM_WORLD_RANK=//p' | head -n 1)
  [ -n "$r" ] && echo "$p $r"
done
exit 0`;
  const out = new Deno.Command("sh", { args: ["-c", script, "sh", marker], stdout: "piped", stderr: "null" })
    .outputSync();
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l).map((l) => {
    const [pid, rank] = l.split(" ").map(Number);
    return { pid, rank };
  });
}

/** The furthest intact checkpoint of a folder: [epoch, step in epoch]; and whether every file in it is whole. */
async function checkpoints(dir: string): Promise<{ at: [number, number]; damaged: string[] }> {
  let at: [number, number] = [0, 0];
  const damaged: string[] = [];
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch {
    return { at, damaged };
  }
  for (const name of names) {
    if (!name.endsWith(".safetensors")) continue; // (a .tmp of an interrupted write is not read as a checkpoint)
    const v = await verifyCheckpointBytes(await Deno.readFile(`${dir}/${name}`), name);
    if (!v.ok) {
      damaged.push(`${name}: ${v.problems.join("; ")}`);
      continue;
    }
    const s = v.state as TrainingState;
    if (s.epoch > at[0] || (s.epoch === at[0] && s.step_in_epoch > at[1])) at = [s.epoch, s.step_in_epoch];
  }
  return { at, damaged };
}

interface Plan {
  what: string;
  env?: Record<string, string>;
  /**
   * Kill from outside: the launcher, or a rank, `ms` after this launch has trained an epoch (a checkpoint newer
   * than its start: the kill lands while training runs, not during start-up); or rank 1 once rank 0 is writing a
   * checkpoint.
   */
  outside?: { target: "launcher" | number; ms?: number; whileWriting?: boolean };
}

/** The launcher's arguments (without its command) for 2 ranks of train.ts on `data` with the tiny model, then `args`. */
function launcherArgs(launcher: string[], data: string, args: string[]): string[] {
  return [...launcher.slice(1), ...mpiTrainArgs(data, [...TINY_TRAIN_ARGS, ...args])];
}

/** The first launches cover every kind of kill, with each rank where it matters; then drawn from the seed. */
const FIRST: [string, number][] = [
  ["collective", 1],
  ["collective", 0],
  ["write", 0],
  ["while-writing", 1],
  ["launcher", 0],
  ["rank", 0],
  ["rank", 1],
];

function draw(rng: Rng, i: number): Plan {
  const pick = <T>(xs: T[]) => xs[Math.floor(rng.next() * xs.length)];
  const [kind, rank] = i < FIRST.length
    ? FIRST[i]
    : [pick(["collective", "collective", "write", "while-writing", "launcher", "rank"]), pick([0, 1])];
  switch (kind) {
    case "collective": {
      const n = 8 + Math.floor(rng.next() * 60);
      return {
        what: `rank ${rank} at its collective call ${n}`,
        env: { GINO_GW_TEST_KILL_COLLECTIVE: `${rank}:${n}` },
      };
    }
    case "write": {
      const spec = `${pick(["during", "before", "after"])}:${
        pick(["latest", "checkpoint_epoch", "loss_history"])
      }:1`;
      return { what: `rank 0 at a write (${spec})`, env: { GINO_GW_TEST_KILL_AT: spec } };
    }
    case "while-writing":
      return {
        what: "rank 1 while rank 0 writes a checkpoint",
        env: { GINO_GW_TEST_WRITE_DELAY_MS: "400" },
        outside: { target: 1, whileWriting: true },
      };
    case "launcher":
      return {
        what: "the launcher",
        outside: { target: "launcher", ms: Math.floor(rng.next() * 800) },
      };
    default:
      return {
        what: `rank ${rank} at a random time`,
        outside: { target: rank, ms: Math.floor(rng.next() * 800) },
      };
  }
}

for (const [name, launcher, launcherEnv] of LAUNCHERS) {
  Deno.test({
    name:
      `${name}: a rank (or the launcher) SIGKILLed at ${KILLS}+ seeded moments ends the job within ${
        BOUND_S[name]
      } s, ` +
      `damages nothing, and the resumed run ends bitwise equal to an uninterrupted one`,
    ignore: !which(launcher[0]),
    async fn() {
      await using t = await tempDir();
      const data = await tinyPatchData();
      const cmd = (results: string, extra: string[]) => [
        ...launcherArgs(launcher, data, ["--epochs", String(EPOCHS), "--save-checkpoint-every", "2"]),
        "--results-dir",
        results,
        "--run-name",
        "r",
        ...extra,
      ];
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      const ref = await new Deno.Command(launcher[0], {
        args: cmd(`${t.dir}/ref`, []),
        env: launcherEnv,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(ref.code, 0, text(ref.stderr));
      const res = `${t.dir}/soak`, ckpts = `${res}/r/checkpoints`;
      const rng = new Rng(SEED);
      const log: string[] = [];
      let kills = 0, longest = 0;
      for (let i = 0; i < KILLS * 4; i++) {
        const before = await checkpoints(ckpts);
        if (before.at[0] >= EPOCHS) break;
        // kills until there are KILLS of them, then the run is finished (resumed) without one
        const p: Plan = kills < KILLS ? draw(rng, i) : { what: "none (finish)" };
        const child = new Deno.Command(launcher[0], {
          args: cmd(res, ["--resume-from", "auto"]),
          env: { ...launcherEnv, ...p.env },
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const startedAt = Date.now();
        let killedAt: number | undefined;
        const o = p.outside;
        const watcher = (async () => {
          if (!o) return;
          if (o.whileWriting) {
            // once a checkpoint's temporary file appears (rank 0 holds it 400 ms before the rename)
            for (let k = 0; k < 400; k++) {
              const tmp = (() => {
                try {
                  return [...Deno.readDirSync(ckpts)].some((e) => e.name.endsWith(".tmp"));
                } catch {
                  return false;
                }
              })();
              if (tmp) break;
              await new Promise((r) => setTimeout(r, 25));
            }
          } else {
            // a sign of progress first: an epoch of this launch saved
            const newer = () => {
              try {
                return (Deno.statSync(`${ckpts}/latest_checkpoint.safetensors`).mtime?.getTime() ?? 0) >
                  startedAt;
              } catch {
                return false;
              }
            };
            for (let k = 0; k < 2400 && !newer(); k++) await new Promise((r) => setTimeout(r, 25));
            await new Promise((r) => setTimeout(r, o.ms));
          }
          if (o.target === "launcher") {
            try {
              child.kill("SIGKILL");
              killedAt = performance.now();
            } catch {
              // already ended
            }
            return;
          }
          const victim = ranks(res).find((x) => x.rank === o.target);
          if (victim) {
            Deno.kill(victim.pid, "SIGKILL");
            killedAt = performance.now();
          }
        })();
        const out = await child.output();
        await watcher;
        const ended = performance.now();
        // every rank gone within the bound
        let gone = ranks(res).length === 0;
        for (let k = 0; !gone && k < BOUND_S[name] * 20; k++) {
          await new Promise((r) => setTimeout(r, 100));
          gone = ranks(res).length === 0;
        }
        const left = ranks(res);
        for (const x of left) Deno.kill(x.pid, "SIGKILL");
        const all = text(out.stdout) + text(out.stderr);
        const after = await checkpoints(ckpts);
        const hookKilled = /signal 9|Killed|exited on signal 9/.test(all) && out.code !== 0;
        const died = killedAt !== undefined || hookKilled;
        if (died) kills++;
        const took = (performance.now() - (killedAt ?? ended)) / 1000;
        if (died) longest = Math.max(longest, took);
        log.push(
          `${i}: ${p.what} -> exit ${out.code}, ${before.at} -> ${after.at}, all gone after ${
            took.toFixed(1)
          } s`,
        );
        const why = () => `${log.join("\n")}\n${all.slice(-3000)}`;
        assert.ok(gone, `ranks left running: ${JSON.stringify(left)}\n${why()}`);
        assert.ok(
          took <= BOUND_S[name],
          `gone after ${took.toFixed(1)} s, bound ${BOUND_S[name]} s\n${why()}`,
        );
        if (died) assert.notEqual(out.code, 0, `a killed job reported success\n${why()}`);
        assert.deepEqual(after.damaged, [], why());
        const hist = `${res}/r/loss_history.json`;
        try {
          JSON.parse(await Deno.readTextFile(hist));
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) assert.fail(`${hist} is not whole: ${e}\n${why()}`);
        }
        // a resume starts from the furthest intact checkpoint, and nothing goes backwards
        const m = / from \S+ \(epoch (\d+)(?:, batch (\d+))?\) towards/.exec(all);
        if (m) assert.deepEqual([Number(m[1]), Number(m[2] ?? 0)], before.at, why());
        assert.ok(
          after.at[0] > before.at[0] || (after.at[0] === before.at[0] && after.at[1] >= before.at[1]),
          why(),
        );
      }
      assert.ok(kills >= KILLS, `${kills} kills:\n${log.join("\n")}`);
      assert.equal((await checkpoints(ckpts)).at[0], EPOCHS, log.join("\n"));
      const weights = async (dir: string) =>
        Object.fromEntries(
          Object.entries((await readSafetensors(`${dir}/r/checkpoints/final_checkpoint.safetensors`)).tensors)
            .map((
              [k, v],
            ) => [k, new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)]),
        );
      const [a, b] = [await weights(`${t.dir}/ref`), await weights(res)];
      for (const k of Object.keys(a)) assert.deepEqual(b[k], a[k], `${k} after the kills\n${log.join("\n")}`);
      console.error(
        `${name}: ${kills} kills; every process gone at most ${longest.toFixed(1)} s after a kill`,
      );
      console.error(log.join("\n"));
    },
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

// A rank that stops answering (SIGSTOP: a hung node, a debugger, a swapped-out process): the others do not wait
// for ever. With --collective-timeout the job ends soon after it, naming the rank, with the resumable status 3;
// a SIGTERM during the stall (the walltime's warning, qdel) is acted on within seconds, rank 0 saving the last
// completed step. Either way the resumed run ends bitwise equal to an uninterrupted one.
for (const [name, launcher, launcherEnv] of LAUNCHERS) {
  Deno.test({
    name:
      `${name}: a rank stopped with SIGSTOP ends the job at the collective timeout naming it, or at a SIGTERM ` +
      `within seconds; resumable (status 3) and resumed bitwise equal`,
    ignore: !which(launcher[0]),
    async fn() {
      await using t = await tempDir();
      const data = await tinyPatchData();
      const marker = `stall-${crypto.randomUUID().slice(0, 8)}`;
      const args = (results: string, extra: string[]) => [
        ...launcherArgs(launcher, data, ["--epochs", "40", "--save-checkpoint-every", "100"]),
        "--results-dir",
        results,
        "--run-name",
        marker,
        ...extra,
      ];
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      const run = (results: string, extra: string[], env: Record<string, string> = {}) =>
        new Deno.Command(launcher[0], {
          args: args(results, extra),
          env: { ...launcherEnv, ...env },
          stdout: "piped",
          stderr: "piped",
        });
      const ref = await run(`${t.dir}/ref`, []).output();
      assert.equal(ref.code, 0, text(ref.stderr));
      const refWeights = await modelBytes(`${t.dir}/ref/${marker}/checkpoints/final_checkpoint.safetensors`);
      // the measured time of an epoch bounds how long a rank that answers can take to come
      const refHistory = JSON.parse(await Deno.readTextFile(`${t.dir}/ref/${marker}/loss_history.json`));
      const epochS = Math.max(...refHistory.epoch_seconds);

      for (const how of ["timeout", "SIGTERM"] as const) {
        const res = `${t.dir}/${how}`, status = `${res}.status`;
        await Deno.writeTextFile(status, "running\n");
        const extra = how === "timeout" ? ["--collective-timeout", "4s"] : [];
        const child = run(res, extra, { GINO_GW_STATUS_FILE: status }).spawn();
        // stop rank 1 once training runs (its first checkpoint is there)
        const latest = `${res}/${marker}/checkpoints/latest_checkpoint.safetensors`;
        for (let i = 0; i < 6000 && !(await exists(latest)); i++) await sleep(10);
        assert.ok(await exists(latest), `${how}: training did not start`);
        const rank1 = ranks(marker).find((r) => r.rank === 1);
        assert.ok(rank1, `${how}: rank 1 not found`);
        Deno.kill(rank1.pid, "SIGSTOP");
        const stoppedAt = performance.now();
        if (how === "SIGTERM") {
          await sleep(3000);
          // as a scheduler signals the job's processes (Open MPI's launcher passes a SIGTERM on only late)
          const rank0 = ranks(marker).find((r) => r.rank === 0)!;
          Deno.kill(rank0.pid, "SIGTERM");
        }
        const signalledAt = performance.now();
        // timeout: 4 s, then a save; SIGTERM: a 2 s grace (or two steps), then a save
        const bound = (how === "timeout" ? 4 : 2) + 8 + 4 * epochS;
        // a job that hangs (the defect) fails the test instead of hanging it
        const watchdog = setTimeout(() => {
          for (const r of ranks(marker)) Deno.kill(r.pid, "SIGKILL");
        }, (bound + 30) * 1000);
        const out = await child.output();
        clearTimeout(watchdog);
        const ended = (performance.now() - (how === "timeout" ? stoppedAt : signalledAt)) / 1000;
        for (const r of ranks(marker)) Deno.kill(r.pid, "SIGKILL"); // (none should be left)
        const err = text(out.stderr) + text(out.stdout);
        assert.ok(
          ended < bound,
          `${how}: the job ended ${ended.toFixed(1)} s after, bound ${bound.toFixed(1)} s\n${err}`,
        );
        assert.equal((await Deno.readTextFile(status)).trim(), "3", `${how}: status file\n${err}`);
        assert.match(
          err,
          new RegExp(`rank 1 \\(pid ${rank1.pid} on [^)]+\\) is stopped`),
          `${how}: names rank 1`,
        );
        assert.match(
          err,
          how === "timeout" ? /no answer in .* for \d+ s \(--collective-timeout 4s\)/ : /stopped by SIGTERM/,
        );
        const h = JSON.parse(await Deno.readTextFile(`${res}/${marker}/loss_history.json`));
        assert.match(
          h.sessions.at(-1).exit,
          how === "timeout" ? /a rank stopped answering/ : /^stopped by SIGTERM/,
        );
        assert.equal(h.sessions.at(-1).exit_status, 3);
        assert.ok(h.train_losses.length < 40, `${how}: stopped before the end`);
        // resumed with both ranks: the uninterrupted run's weights, bit for bit
        const resumed = await run(res, ["--resume-from", "auto"]).output();
        assert.equal(resumed.code, 0, text(resumed.stderr));
        const w = await modelBytes(`${res}/${marker}/checkpoints/final_checkpoint.safetensors`);
        assert.deepEqual(
          w,
          refWeights,
          `${how}: the resumed run's weights differ from the uninterrupted run's`,
        );
        console.log(
          `${name}: ${how}: the job ended ${ended.toFixed(1)} s after the ${
            how === "timeout" ? "stop" : "SIGTERM"
          }`,
        );
      }
    },
  });
}
