// The Slurm job scripts under a real Slurm: Debian's slurm-wlm (slurmctld and slurmd on this machine, munge for
// authentication), started by the test itself with its own configuration, ports and folders. Skipped, saying why,
// where Slurm is not installed or without root; where it is, a cluster that does not start fails the test. The node is declared with 16 CPUs and 70 GB (accepted as
// configured) so that the scripts run with their own #SBATCH lines; only the time limit and the warning signal
// are set through sbatch's environment (SBATCH_TIMELIMIT, SBATCH_SIGNAL), which resubmitted jobs inherit.
import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { runTrain, tempDir, TINY_TRAIN_ARGS, tinyPatchData } from "./_helpers.ts";
import { find, LocalSlurm } from "./_slurm.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

const missingBins = ["munged", "slurmctld", "slurmd", "sbatch"].filter((b) => !find(b));
const available = missingBins.length
  ? `${missingBins.join(", ")} not found (Debian: apt-get install slurm-wlm munge)`
  : undefined;
if (available) console.error(`Slurm tests skipped: ${available}`);

const TINY = [...TINY_TRAIN_ARGS.filter((a) => a !== "--quiet")].join(" ");

async function modelWeights(path: string): Promise<Float32Array[]> {
  const f = await readSafetensors(path);
  return Object.entries(f.tensors).filter(([k]) => k.startsWith("model.")).sort(([a], [b]) =>
    a.localeCompare(b)
  )
    .map(([, t]) => t.data as Float32Array);
}

/** The job outputs of a folder (SBATCH_OUTPUT=<dir>/job_%j.out), in job order. */
async function jobOutputs(dir: string): Promise<string[]> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) =>
    /^job_\d+\.out$/.test(n)
  );
  names.sort((a, b) => Number(a.slice(4, -4)) - Number(b.slice(4, -4)));
  return await Promise.all(names.map((n) => Deno.readTextFile(`${dir}/${n}`)));
}

Deno.test({
  name:
    "Slurm: train_gino.slurm stops in time, chains itself to the end, and ends where one uninterrupted run " +
    "ends; the warning signal (--signal=B:USR1) stops the trainer with a resumable checkpoint; " +
    "train_gino_mpi.slurm trains with srun ranks",
  ignore: available !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await using tmp = await tempDir();
    const cluster = await LocalSlurm.start(`${tmp.dir}/slurm`);
    // installed, as root, yet not started: a failure (the test cannot pass while the cluster does not run)
    if (typeof cluster === "string") throw new Error(`the test cluster did not start: ${cluster}`);
    try {
      const data = await tinyPatchData();
      /** Submits a job script (results and job outputs in `out`), waits until no job is left: the outputs. */
      const runJobs = async (out: string, sbatch: string[], env: Record<string, string>, waitMs: number) => {
        await Deno.mkdir(out);
        const sub = await cluster.cmd("sbatch", ["--parsable", ...sbatch], {
          GINO_DIR: ROOT,
          DENO: Deno.execPath(),
          SBATCH_OUTPUT: `${out}/job_%j.out`,
          RESULTS_DIR: `${out}/results`,
          ...env,
        });
        assert.equal(sub.code, 0, sub.stderr);
        assert.ok(await cluster.idle(waitMs), "the jobs end");
        return await jobOutputs(out);
      };

      await t.step("a chain stopped by the time limit reaches the end of one uninterrupted run", async () => {
        const out = `${tmp.dir}/chain`, epochs = 250;
        const args = `--base-data-dir ${data} --epochs ${epochs} ${TINY} --run-name s`;
        const outs = await runJobs(out, [`${ROOT}/hpc/train_gino.slurm`], {
          TRAIN_ARGS: args,
          RESUBMIT: "1",
          // a 2-minute job: the trainer's own clock stops it 100 s before the end (Slurm's warning signal, asked
          // for 30 s before, comes later, or up to a minute earlier as Slurm may send it)
          SBATCH_TIMELIMIT: "2",
          SBATCH_SIGNAL: "B:USR1@30",
          MARGIN_SEC: "100",
        }, 8 * 60_000);
        const all = outs.join("\n-----\n");
        assert.ok(outs.length >= 2, `more than one job ran:\n${all}`);
        assert.match(outs[0], /walltime \d+:\d\d: training stops after \d+s/, all);
        assert.match(outs[0], /trainer exited with status 3/, all);
        assert.match(outs[0], /resubmitted as \d+ \(chain step 1\)/, all);
        assert.match(outs[outs.length - 1], /training complete: the chain stops here/, all);
        const h = JSON.parse(await Deno.readTextFile(`${out}/results/s/loss_history.json`));
        assert.equal(h.total_epochs, epochs);
        assert.ok(h.sessions.length >= 2);
        // the same run without a stop
        const one = await runTrain([
          "--epochs",
          String(epochs),
          "--results-dir",
          `${out}/direct`,
          "--run-name",
          "s",
        ]);
        assert.equal(one.code, 0, one.stderr);
        const h1 = JSON.parse(await Deno.readTextFile(`${out}/direct/s/loss_history.json`));
        assert.deepEqual(h.train_losses, h1.train_losses, "the same losses as one uninterrupted run");
        assert.deepEqual(h.val_losses, h1.val_losses);
        const [w, w1] = [
          await modelWeights(`${out}/results/s/checkpoints/final_checkpoint.safetensors`),
          await modelWeights(`${out}/direct/s/checkpoints/final_checkpoint.safetensors`),
        ];
        w.forEach((a, i) => assert.deepEqual(a, w1[i]));
      });

      await t.step(
        "Slurm's warning signal stops the trainer, which saves a resumable checkpoint",
        async () => {
          const out = `${tmp.dir}/signal`;
          const [o] = await runJobs(out, [`${ROOT}/hpc/train_gino.slurm`], {
            TRAIN_ARGS: `--base-data-dir ${data} --epochs 100000 ${TINY} --run-name g`,
            RESUBMIT: "0",
            SBATCH_TIMELIMIT: "2",
            SBATCH_SIGNAL: "B:USR1@90",
            MARGIN_SEC: "0",
          }, 4 * 60_000);
          assert.match(o, /USR1 received: asking the trainer to save and stop/, o);
          assert.match(o, /trainer exited with status 3/, o);
          const h = JSON.parse(await Deno.readTextFile(`${out}/results/g/loss_history.json`));
          assert.match(h.sessions[0].exit, /stopped by SIGTERM/);
          const more = await runTrain([
            "--epochs",
            String(h.total_epochs + 1),
            "--results-dir",
            `${out}/results`,
            "--resume-from",
            "auto",
          ]);
          assert.equal(more.code, 0, more.stderr);
        },
      );

      await t.step(
        "train_gino_mpi.slurm: two ranks started by srun train the model of one process",
        async () => {
          const mpich = find("mpiexec.mpich");
          if (!mpich) return console.error("MPI under Slurm skipped: no MPICH (apt-get install mpich)");
          const out = `${tmp.dir}/mpi`;
          const args = `--base-data-dir ${data} --epochs 3 ${TINY} --run-name m`;
          const [o] = await runJobs(
            out,
            ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", `${ROOT}/hpc/train_gino_mpi.slurm`],
            { TRAIN_ARGS: args, RESUBMIT: "0", SBATCH_TIMELIMIT: "10", GINO_GW_TEST_RANK_REPORT: "1" },
            4 * 60_000,
          );
          assert.match(o, /MPI: 2 rank\(s\) on 1 node\(s\)/, o);
          assert.match(o, /trainer exited with status 0/, o);
          const hashes = [...o.matchAll(/rank (\d) weights sha256 ([0-9a-f]{64})/g)].map((m) => m[2]);
          assert.equal(hashes.length, 2, o);
          assert.equal(hashes[0], hashes[1], "both ranks hold the same weights");
          assert.match(await Deno.readTextFile(`${out}/results/m/train.log`), /data-parallel: 2 ranks/);
          const one = await runTrain(["--epochs", "3", "--results-dir", `${out}/one`, "--run-name", "m"]);
          assert.equal(one.code, 0, one.stderr);
          const [w2, w1] = [
            await modelWeights(`${out}/results/m/checkpoints/final_checkpoint.safetensors`),
            await modelWeights(`${out}/one/m/checkpoints/final_checkpoint.safetensors`),
          ];
          let d = 0, m = 0;
          w1.forEach((a, i) =>
            a.forEach((v, j) => {
              d = Math.max(d, Math.abs(v - w2[i][j]));
              m = Math.max(m, Math.abs(v));
            })
          );
          assert.ok(d <= 1e-6 * m, `weights differ by ${d / m} of the largest`);
        },
      );
    } finally {
      await cluster.stop();
    }
  },
});
