import assert from "node:assert/strict";
import { runTrain, tempDir, tinyPatchData, which } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const TINY = "--input-window-size 3 --output-window-size 2 --batch-size 4 --latent-grid 8 --fno-modes 4 " +
  "--fno-hidden-channels 8 --lifting-channels 8 --fno-layers 2 --gno-mlp-layers 8 --gno-radius 0.6 " +
  "--projection-channel-ratio 1 --backend wasm --run-name pbs";

let limit: Promise<number> | undefined;
/**
 * The jobs' training time (the walltime of 60 s less MARGIN_SEC), from this machine's measured speed: 4 times a
 * 2-epoch run of the tiny model with its start-up, at least 8 s (a loaded machine gets longer, never too short).
 */
function trainingSeconds(): Promise<number> {
  limit ??= (async () => {
    await using t = await tempDir();
    const t0 = performance.now();
    const r = await runTrain(["--epochs", "2", "--results-dir", t.dir]);
    assert.equal(r.code, 0, r.stderr);
    return Math.min(50, Math.max(8, Math.ceil((4 * (performance.now() - t0)) / 1000)));
  })();
  return limit;
}

async function setup(dir: string) {
  await Deno.mkdir(`${dir}/bin`);
  await Deno.writeTextFile(
    `${dir}/bin/qstat`,
    `#!/bin/bash\necho "Job Id: $2"\necho "    Resource_List.walltime = 00:01:00"\n`,
  );
  await Deno.writeTextFile(
    `${dir}/bin/qsub`,
    `#!/bin/bash\necho "$@" >> "${dir}/qsub.log"\necho "999.test"\n`,
  );
  await Deno.chmod(`${dir}/bin/qstat`, 0o755);
  await Deno.chmod(`${dir}/bin/qsub`, 0o755);
}

async function job(
  dir: string,
  epochs: number,
  extra: Record<string, string> = {},
  script = "train_gino.pbs",
) {
  return new Deno.Command("bash", {
    args: [`${ROOT}/hpc/${script}`],
    env: {
      PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
      PBS_JOBID: "123.test",
      PBS_O_WORKDIR: ROOT,
      DENO: Deno.execPath(),
      TRAIN_ARGS: `--base-data-dir ${await tinyPatchData()} --epochs ${epochs} ${TINY}`,
      RESULTS_DIR: `${dir}/results`,
      MARGIN_SEC: String(60 - (await trainingSeconds())), // walltime 60 s -> training stops in time
      RESUBMIT: "1",
      ...extra,
    },
    stdout: "piped",
    stderr: "piped",
  });
}

const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("the PBS job starts training, resumes when resubmitted, forwards SIGTERM (a deleted job saves and does not resubmit), and ends the chain when done", async () => {
  await using t = await tempDir();
  await setup(t.dir);
  const hist = async () => JSON.parse(await Deno.readTextFile(`${t.dir}/results/pbs/loss_history.json`));

  // 1. first submission: trains until the time limit, then resubmits itself after this job
  const first = await (await job(t.dir, 1000)).output();
  const out1 = text(first.stdout) + text(first.stderr);
  assert.equal(first.code, 0, out1);
  assert.match(out1, new RegExp(`training stops after ${await trainingSeconds()}s`));
  assert.match(out1, /trainer exited with status 3/);
  const qsub1 = (await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n");
  assert.equal(qsub1.length, 1);
  assert.match(
    qsub1[0],
    /-V -W depend=afterany:123\.test -v GINO_CHAIN_ENV=.*\.pbs_chain_env\.123\.test .*train_gino\.pbs/,
  );
  const envFile = qsub1[0].match(/GINO_CHAIN_ENV=(\S+)/)![1];
  assert.match(await Deno.readTextFile(envFile), /CHAIN_INDEX=1/);
  const epochsAfter1 = (await hist()).total_epochs;
  assert.ok(epochsAfter1 >= 1);

  // 2. the resubmitted job (settings from the chain file) resumes the same run
  const second = await (await job(t.dir, 1000, { GINO_CHAIN_ENV: envFile, TRAIN_ARGS: "", RESUBMIT: "" }))
    .output();
  const out2 = text(second.stdout) + text(second.stderr);
  assert.equal(second.code, 0, out2);
  assert.match(out2, /chain step 1/);
  assert.equal((await hist()).sessions.length, 2);
  assert.ok((await hist()).total_epochs > epochsAfter1);

  // 3. a SIGTERM before the walltime (qdel, qsig -s TERM) is forwarded; the trainer saves and the chain stops
  const qsubBefore3 = (await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length;
  const child = (await job(t.dir, 1000, { MARGIN_SEC: "0", WALLTIME: "" })).spawn();
  const log = `${t.dir}/results/pbs/train.log`;
  const before = (await Deno.readTextFile(log)).split("\n").length;
  for (let i = 0; i < 600; i++) {
    const lines = (await Deno.readTextFile(log)).split("\n");
    if (lines.slice(before).some((l) => / epoch \d+\/1000 /.test(l))) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGTERM");
  const third = await child.output();
  const out3 = text(third.stdout) + text(third.stderr);
  assert.equal(third.code, 0, out3);
  assert.match(out3, /TERM received: asking the trainer to save and stop/);
  assert.match(out3, /trainer exited with status 3/);
  assert.match(out3, /the job was cancelled \(SIGTERM after \d+s, before the walltime\): not resubmitting/);
  assert.equal((await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length, qsubBefore3);
  const h3 = await hist();
  assert.equal(h3.sessions.length, 3);
  assert.match(h3.sessions[2].exit, /stopped by SIGTERM/);

  // 4. when the target is reached the trainer exits 0 and nothing is resubmitted
  const qsubBefore = (await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length;
  const last = await (await job(t.dir, h3.total_epochs + 1)).output();
  const out4 = text(last.stdout) + text(last.stderr);
  assert.equal(last.code, 0, out4);
  assert.match(out4, /training complete: the chain stops here/);
  assert.equal((await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length, qsubBefore);
  assert.equal((await hist()).total_epochs, h3.total_epochs + 1);
});

Deno.test("two chains in one results folder: each chain's later jobs resume its own run, and ckpt list says which chain trained which run", async () => {
  await using t = await tempDir();
  await setup(t.dir);
  const base = `--base-data-dir ${await tinyPatchData()} --epochs 1000 ${
    TINY.replace(" --run-name pbs", "")
  }`;
  const run = async (extra: Record<string, string>) => {
    const o = await (await job(t.dir, 1000, extra)).output();
    const out = text(o.stdout) + text(o.stderr);
    assert.equal(o.code, 0, out);
    assert.match(out, /trainer exited with status 3/);
    return out;
  };
  const envs = async () =>
    (await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").map((l) =>
      l.match(/GINO_CHAIN_ENV=(\S+)/)![1]
    );
  // chain A starts a new run (no run name), stops at its time limit and resubmits itself
  const a1 = await run({ PBS_JOBID: "100.test", TRAIN_ARGS: base });
  const runA = a1.match(/run: \S+\/(gino_\d{8}_\d{6}) \(chain 100\.test\)/)![1];
  // chain B starts in the same folder, trying another setting in a run of its own
  const b1 = await run({
    PBS_JOBID: "200.test",
    TRAIN_ARGS: `${base} --run-name second --learning-rate 5e-4`,
  });
  assert.match(b1, /run: \S+\/second \(chain 200\.test\)/);
  const [envA, envB] = await envs();
  assert.notEqual(envA, envB, "one chain file per chain");
  assert.match(await Deno.readTextFile(envA), new RegExp(`GINO_RUN_NAME=${runA}`));
  // A's next job resumes A's run, though B's run is newer; then B's resumes B's
  const a2 = await run({ PBS_JOBID: "101.test", GINO_CHAIN_ENV: envA, TRAIN_ARGS: "", RESUBMIT: "" });
  assert.match(a2, new RegExp(`run: \\S+/${runA} \\(chain 100\\.test\\)`));
  const b2 = await run({ PBS_JOBID: "201.test", GINO_CHAIN_ENV: envB, TRAIN_ARGS: "", RESUBMIT: "" });
  assert.match(b2, /run: \S+\/second \(chain 200\.test\)/);
  const hist = async (r: string) =>
    JSON.parse(await Deno.readTextFile(`${t.dir}/results/${r}/loss_history.json`));
  const [ha, hb] = [await hist(runA), await hist("second")];
  assert.deepEqual(ha.sessions.map((x: { job: string }) => x.job), ["100.test", "101.test"]);
  assert.deepEqual(hb.sessions.map((x: { job: string }) => x.job), ["200.test", "201.test"]);
  assert.ok(ha.sessions.every((x: { chain: string }) => x.chain === "100.test"));
  assert.ok(hb.sessions.every((x: { chain: string }) => x.chain === "200.test"));
  // the resumed runs kept their own settings
  const lr = async (r: string) =>
    JSON.parse(await Deno.readTextFile(`${t.dir}/results/${r}/config.json`)).settings.optim.learningRate;
  assert.equal(await lr("second"), 5e-4);
  assert.notEqual(await lr(runA), 5e-4);
  // ckpt list: which chain trained which run
  const list = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/manage_checkpoints.ts`, "list", "--results-dir", `${t.dir}/results`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const table = text(list.stdout);
  assert.equal(list.code, 0, text(list.stderr));
  assert.match(table, /\bchain\b/);
  assert.match(table, new RegExp(`${runA} .*100\\.test`));
  assert.match(table, /second .*200\.test/);
});

for (
  const [name, launcher, extra] of [
    ["MPICH", "mpiexec.mpich", {}],
    ["Open MPI", "mpiexec.openmpi", {
      MPI_FLAGS: "--oversubscribe",
      OMPI_ALLOW_RUN_AS_ROOT: "1",
      OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
      OMPI_MCA_btl: "self,vader",
      OMPI_SIGKILL_TIMEOUT: "2",
    }],
  ] as const
) {
  Deno.test({
    name:
      `${name}: the MPI job runs the ranks PBS gave it, stops in time, passes SIGTERM on and chains by status`,
    ignore: !which(launcher),
    async fn() {
      await using t = await tempDir();
      await setup(t.dir);
      const host = new TextDecoder().decode(new Deno.Command("hostname").outputSync().stdout).trim();
      await Deno.writeTextFile(`${t.dir}/nodes`, `${host}\n${host}\n`);
      const hist = async () => JSON.parse(await Deno.readTextFile(`${t.dir}/results/pbs/loss_history.json`));
      const log = `${t.dir}/results/pbs/train.log`;
      const mpiJob = (epochs: number, env: Record<string, string> = {}) =>
        job(t.dir, epochs, {
          PBS_NODEFILE: `${t.dir}/nodes`,
          NCPUS: "2",
          MPI_LAUNCHER: launcher,
          ...extra,
          ...env,
        }, "train_gino_mpi.pbs");
      const run = async (epochs: number) => {
        const out = await (await mpiJob(epochs)).output();
        return { code: out.code, text: text(out.stdout) + text(out.stderr) };
      };

      // 1. the walltime limit stops all ranks with a checkpoint; the job resubmits itself
      const first = await run(1000);
      assert.equal(first.code, 0, first.text);
      assert.match(first.text, /MPI: 2 rank\(s\), 2 on this node \(2 cores\), 1 BLAS thread\(s\) per rank/);
      assert.match(first.text, /trainer exited with status 3/);
      assert.match(await Deno.readTextFile(log), /data-parallel: 2 ranks on 1 node\(s\)/);
      assert.equal((await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length, 1);
      assert.match(
        await Deno.readTextFile(`${t.dir}/results/.pbs_chain_env.123.test`),
        /MPI_LAUNCHER=mpiexec/,
      );

      // 2. SIGTERM to the job: passed on; every rank stops; status 3 although the launcher may say otherwise
      const sessionsBefore = (await hist()).sessions.length;
      const child = (await mpiJob(1000, { MARGIN_SEC: "0", WALLTIME: "" })).spawn();
      // signal once this job's session has finished an epoch (the log alone can show lines a resume rebuilt)
      const waitStart = Date.now();
      for (let i = 0; i < 600; i++) {
        const s = (await hist()).sessions;
        if (s.length > sessionsBefore && s.at(-1).last_epoch !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const waited = Date.now() - waitStart;
      child.kill("SIGTERM");
      const second = await child.output();
      const out2 = text(second.stdout) + text(second.stderr);
      assert.equal(second.code, 0, out2);
      assert.match(out2, /trainer exited with status 3/);
      const h = await hist();
      const why = `waited ${waited} ms for an epoch before SIGTERM\n${out2}\n${await Deno.readTextFile(
        log,
      )}\n${JSON.stringify(h.sessions, null, 1)}`;
      assert.match(String(h.sessions.at(-1).exit), /stopped by SIGTERM/, why);

      // 3. a rank killed inside a collective call after this job saved checkpoints: the launcher ends the job,
      // and the job reads the unreported end as resumable (the next job resumes) and resubmits
      const submitted = (await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length;
      const killed = await (await mpiJob(1000, { GINO_GW_TEST_KILL_COLLECTIVE: "1:200" })).output();
      const outK = text(killed.stdout) + text(killed.stderr);
      assert.equal(killed.code, 0, outK);
      assert.match(
        outK,
        /ended without reporting its status \(status \d+: killed\?\) after saving checkpoints: resumable/,
      );
      assert.match(outK, /trainer exited with status 3/);
      assert.equal((await Deno.readTextFile(`${t.dir}/qsub.log`)).trim().split("\n").length, submitted + 1);
      assert.equal(
        (await hist()).sessions.at(-1).end,
        null,
        "the killed session's record says it was killed",
      );

      // 4. the target reached: status 0 ends the chain
      const h4 = await hist();
      const third = await run(h4.total_epochs + 1);
      assert.equal(third.code, 0, third.text);
      assert.match(third.text, /training complete: the chain stops here/);
      assert.equal((await hist()).total_epochs, h4.total_epochs + 1);
      const statusFiles = [...Deno.readDirSync(`${t.dir}/results`)].filter((e) =>
        e.name.startsWith(".exit_status")
      );
      assert.deepEqual(statusFiles, [], "status files are removed");
    },
  });
}
