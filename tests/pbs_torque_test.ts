// The PBS job scripts submitted with a real qsub: Slurm's Torque layer (Debian's slurm-wlm-torque: qsub, qstat and
// qdel that drive Slurm) on the Slurm cluster of this machine that the Slurm test also starts. Skipped, saying why,
// without root, Slurm, munge or the Torque layer; where they are all there, a cluster that does not start fails it.
//
// What the Torque layer cannot show, and tests/pbs_test.ts (a stub qsub/qstat with PBS's environment) keeps:
// PBS_JOBID, PBS_O_WORKDIR and PBS_NODEFILE are not set (the job has SLURM_JOB_ID; the scripts use it and the
// submit folder), `-j oe` and `-N` do not name or join the output files, and the signals are Slurm's: at the
// walltime and on qdel every process of the job gets SIGTERM and SIGKILL KillWait seconds later (PBS Pro sends
// SIGTERM then SIGKILL after its kill_delay, to the job's processes as well).
import assert from "node:assert/strict";
import { verifyCheckpointBytes } from "../lib/train/checkpoint.ts";
import { modelBytes, runTrain, tempDir, TINY_TRAIN_ARGS, tinyPatchData } from "./_helpers.ts";
import { find, LocalSlurm } from "./_slurm.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const TINY = TINY_TRAIN_ARGS.filter((a) => a !== "--quiet").join(" ");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Why these tests cannot run here (undefined: they can). */
const cannot = (() => {
  const missing = ["munged", "slurmctld", "slurmd", "sbatch", "qsub", "qstat", "qdel"].filter((b) =>
    !find(b)
  );
  if (missing.length) {
    return `${missing.join(", ")} not found (Debian: apt-get install slurm-wlm slurm-wlm-torque munge)`;
  }
  try {
    if (!Deno.readTextFileSync(find("qsub")!).includes("sbatch")) return "qsub is not Slurm's Torque layer";
  } catch {
    return "qsub is not Slurm's Torque layer (not a script)";
  }
  if (Deno.uid() !== 0) return "the daemons of a test cluster need root";
  return undefined;
})();
if (cannot) console.error(`PBS-on-Slurm tests skipped: ${cannot}`);

/** The job outputs (`<script>.o<id>` and `.e<id>`, as the Torque layer names them) of a folder, in job order. */
async function jobOutputs(dir: string): Promise<string[]> {
  const ids = new Set<number>();
  for await (const e of Deno.readDir(dir)) {
    const m = /\.[oe](\d+)$/.exec(e.name);
    if (m) ids.add(Number(m[1]));
  }
  const out: string[] = [];
  for (const id of [...ids].sort((a, b) => a - b)) {
    let text = "";
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(`.o${id}`) || e.name.endsWith(`.e${id}`)) {
        text += await Deno.readTextFile(`${dir}/${e.name}`);
      }
    }
    out.push(text);
  }
  return out;
}

Deno.test({
  name: "PBS on Slurm's Torque layer: #PBS walltime stops training resumably, RESUBMIT=1 chains to the end " +
    "bitwise equal to one run, qdel leaves a resumable run and stops the chain, the MPI script runs its ranks",
  ignore: cannot !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using tmp = await tempDir();
    const cluster = await LocalSlurm.start(`${tmp.dir}/slurm`);
    // installed, as root, yet not started: a failure (the test cannot pass while the cluster does not run)
    if (typeof cluster === "string") throw new Error(`the test cluster did not start: ${cluster}`);
    try {
      const data = await tinyPatchData();
      /** qsub (with -V: the settings travel in the environment) from `out`; waits until no job is left. */
      const qsub = async (out: string, args: string[], env: Record<string, string>) => {
        await Deno.mkdir(out, { recursive: true });
        const sub = await cluster.cmd("qsub", ["-V", ...args], {
          GINO_DIR: ROOT,
          DENO: Deno.execPath(),
          RESULTS_DIR: `${out}/results`,
          ...env,
        }, out);
        assert.equal(sub.code, 0, sub.stderr);
        return sub.stdout.trim();
      };
      const idle = async (ms: number) => assert.ok(await cluster.idle(ms), "the jobs end");

      await t.step(
        "the #PBS walltime stops each job in time; RESUBMIT=1 chains to one run's end",
        async () => {
          const out = `${tmp.dir}/chain`, epochs = 100;
          await Deno.mkdir(out);
          // the project's script with a one-minute walltime: the resubmitted jobs run it too
          const original = await Deno.readTextFile(`${ROOT}/hpc/train_gino.pbs`);
          const script = original.replace(/^#PBS -l walltime=.*$/m, "#PBS -l walltime=00:01:00");
          assert.notEqual(script, original, "the script has a #PBS -l walltime line");
          await Deno.writeTextFile(`${out}/train_short.pbs`, script);
          const args = `--base-data-dir ${data} --epochs ${epochs} ${TINY} --run-name q`;
          await qsub(out, [`${out}/train_short.pbs`], {
            GINO_PBS_SCRIPT: `${out}/train_short.pbs`,
            TRAIN_ARGS: args,
            RESUBMIT: "1",
            MARGIN_SEC: "48", // the trainer stops itself 48 s before the walltime: after 12 s
          });
          await idle(5 * 60_000);
          const outs = await jobOutputs(out);
          const all = outs.join("\n-----\n");
          assert.ok(outs.length >= 2, `more than one job ran:\n${all}`);
          assert.match(outs[0], /walltime 00:01:00: training stops after 12s/, all);
          assert.match(outs[0], /trainer exited with status 3/, all);
          assert.match(outs[0], /resubmitted as \d+ \(chain step 1\)/, all);
          assert.match(outs[1], /walltime 00:01:00: training stops after 12s/, all);
          assert.match(outs[outs.length - 1], /training complete: the chain stops here/, all);
          const h = JSON.parse(await Deno.readTextFile(`${out}/results/q/loss_history.json`));
          assert.equal(h.total_epochs, epochs);
          assert.equal(h.sessions.length, outs.length);
          const chain = /job (\d+) \(chain step 0\)/.exec(outs[0])?.[1];
          assert.ok(
            h.sessions.every((s: { chain?: string }) => s.chain === chain),
            "every job is of one chain",
          );
          const one = await runTrain([
            "--epochs",
            String(epochs),
            "--results-dir",
            `${out}/direct`,
            "--run-name",
            "q",
          ]);
          assert.equal(one.code, 0, one.stderr);
          assert.deepEqual(
            await modelBytes(`${out}/results/q/checkpoints/final_checkpoint.safetensors`),
            await modelBytes(`${out}/direct/q/checkpoints/final_checkpoint.safetensors`),
            "the chain ends bitwise where one uninterrupted run ends",
          );
        },
      );

      await t.step("qdel of a running job: the trainer saves, the chain stops, the run resumes", async () => {
        const out = `${tmp.dir}/qdel`;
        const id = await qsub(out, [`${ROOT}/hpc/train_gino.pbs`], {
          TRAIN_ARGS: `--base-data-dir ${data} --epochs 100000 ${TINY} --run-name d`,
          RESUBMIT: "1",
        });
        const log = `${out}/results/d/train.log`;
        for (let i = 0; i < 600; i++) {
          if (/ epoch \d+\/100000 /.test(await Deno.readTextFile(log).catch(() => ""))) break;
          await sleep(100);
        }
        const del = await cluster.cmd("qdel", [id]);
        assert.equal(del.code, 0, del.stderr);
        await idle(2 * 60_000);
        const outs = await jobOutputs(out);
        assert.equal(outs.length, 1, `no job after the deleted one:\n${outs.join("\n-----\n")}`);
        const o = outs[0];
        assert.match(o, /TERM received: asking the trainer to save and stop/, o);
        assert.match(o, /trainer exited with status 3/, o);
        assert.match(
          o,
          /the job was cancelled \(SIGTERM after \d+s, before the walltime\): not resubmitting/,
          o,
        );
        const h = JSON.parse(await Deno.readTextFile(`${out}/results/d/loss_history.json`));
        assert.match(h.sessions[0].exit, /stopped by SIGTERM/);
        const latest = `${out}/results/d/checkpoints/latest_checkpoint.safetensors`;
        const v = await verifyCheckpointBytes(await Deno.readFile(latest), latest);
        assert.ok(v.ok, v.problems.join("; "));
        const more = await runTrain([
          "--epochs",
          String(h.total_epochs + 1),
          "--results-dir",
          `${out}/results`,
          "--resume-from",
          "auto",
        ]);
        assert.equal(more.code, 0, more.stderr);
        const h2 = JSON.parse(await Deno.readTextFile(`${out}/results/d/loss_history.json`));
        assert.deepEqual(h2.train_losses.slice(0, h.total_epochs), h.train_losses, "resumed, not restarted");
      });

      await t.step(
        "train_gino_mpi.pbs: two MPICH ranks in the job qsub asked for, stopped by the walltime",
        async () => {
          const mpich = find("mpiexec.mpich");
          if (!mpich) {
            return console.error("MPI on the Torque layer skipped: no MPICH (apt-get install mpich)");
          }
          const out = `${tmp.dir}/mpi`;
          await qsub(out, [
            "-l",
            "select=1:ncpus=2:mpiprocs=2,walltime=00:01:00",
            `${ROOT}/hpc/train_gino_mpi.pbs`,
          ], {
            TRAIN_ARGS: `--base-data-dir ${data} --epochs 100000 ${TINY} --run-name m`,
            RESUBMIT: "0",
            MARGIN_SEC: "45",
            NRANKS: "2", // no PBS_NODEFILE on the Torque layer
            MPI_LAUNCHER: mpich,
            GINO_GW_TEST_RANK_REPORT: "1",
          });
          await idle(3 * 60_000);
          const [o] = await jobOutputs(out);
          assert.match(o, /MPI: 2 rank\(s\)/, o);
          assert.match(o, /walltime 00:01:00: training stops after 15s/, o);
          assert.match(o, /trainer exited with status 3/, o);
          assert.match(o, /run: \S+\/m \(chain \d+\)/, o);
          assert.match(await Deno.readTextFile(`${out}/results/m/train.log`), /data-parallel: 2 ranks/);
          const h = JSON.parse(await Deno.readTextFile(`${out}/results/m/loss_history.json`));
          assert.match(h.sessions[0].exit, /stopped by time limit/);
          assert.ok(h.sessions[0].chain, "the chain is recorded");
        },
      );
    } finally {
      await cluster.stop();
    }
  },
});
