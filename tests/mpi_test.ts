// Data-parallel training over MPI: `mpiexec -n 2 deno task train` trains one model with two processes, the same as
// one process up to float rounding; stops together; resumes with any number of processes; and without a launcher
// nothing of MPI is loaded. Runs with each launcher installed (CI installs MPICH; Open MPI when present).
import assert from "node:assert/strict";
import { readSafetensors } from "../lib/io/safetensors.ts";
import { gpuAdapter } from "../lib/model/backend.ts";
import { detectLaunch } from "../lib/parallel/mpi.ts";
import { initWorld, mpiLibraryLoaded, SINGLE } from "../lib/parallel/world.ts";
import { runTrain, tempDir, TINY_TRAIN_ARGS, tinyPatchData, which } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** The launchers to test with: [name, command and flags]. */
const LAUNCHERS: [string, string[], Record<string, string>][] = [
  ["MPICH", ["mpiexec.mpich"], {}],
  ["Open MPI", ["mpiexec.openmpi", "--oversubscribe"], {
    OMPI_ALLOW_RUN_AS_ROOT: "1",
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: "1",
    OMPI_MCA_btl: "self,vader",
    // Open MPI 4's mpirun passes a SIGTERM on after this many seconds and SIGKILLs the ranks as long after that:
    // the ranks have that long to save (3 s: under load the stop's writes, slowed down by the test, can take 2)
    OMPI_MCA_odls_base_sigkill_timeout: "3",
  }],
];

/** The launcher command line that runs train.ts on the tiny data with `n` ranks. */
async function mpiCommand(launcher: string[], n: number, args: string[]): Promise<string[]> {
  return [
    ...launcher,
    "-n",
    String(n),
    Deno.execPath(),
    "run",
    "-A",
    `${ROOT}train.ts`,
    "--base-data-dir",
    await tinyPatchData(),
    ...TINY_TRAIN_ARGS,
    ...args,
  ];
}

/** train.ts on the tiny data under a launcher with `n` ranks. */
async function mpiTrain(launcher: string[], env: Record<string, string>, n: number, args: string[]) {
  const [cmd, ...rest] = await mpiCommand(launcher, n, args);
  const out = await new Deno.Command(cmd, {
    args: rest,
    env: { GINO_GW_TEST_RANK_REPORT: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    cwd: ROOT,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function weights(path: string): Promise<Float32Array> {
  const f = await readSafetensors(path);
  const parts = Object.entries(f.tensors).filter(([k]) => k.startsWith("model.")).map(([, t]) =>
    t.data as Float32Array
  );
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** max |a - b| / max |b| */
function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return d / s;
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const history = async (run: string) => JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`));

for (const [name, launcher, env] of LAUNCHERS) {
  const ignore = !which(launcher[0]);
  Deno.test({
    name: `${name}: two ranks train one model: equal weights on both, and those of one process to 1e-6`,
    ignore,
    async fn() {
      await using t = await tempDir();
      const common = ["--epochs", "3", "--run-name", "r"];
      const one = await runTrain([...common, "--results-dir", `${t.dir}/one`]);
      assert.equal(one.code, 0, one.stderr);
      const two = await mpiTrain(launcher, env, 2, [...common, "--results-dir", `${t.dir}/two`]);
      assert.equal(two.code, 0, two.stderr);
      const hashes = [...two.stderr.matchAll(/rank (\d) weights sha256 ([0-9a-f]{64})/g)].map((
        m,
      ) => [m[1], m[2]]);
      assert.equal(hashes.length, 2, two.stderr);
      assert.equal(hashes[0][1], hashes[1][1], "rank 0 and rank 1 hold the same weights");
      const w1 = await weights(`${t.dir}/one/r/checkpoints/final_checkpoint.safetensors`);
      const w2 = await weights(`${t.dir}/two/r/checkpoints/final_checkpoint.safetensors`);
      assert.ok(relDiff(w2, w1) < 1e-6, `weights differ by ${relDiff(w2, w1)}`);
      const [h1, h2] = [await history(`${t.dir}/one/r`), await history(`${t.dir}/two/r`)];
      assert.ok(relDiff(h2.train_losses, h1.train_losses) < 1e-6, "training losses");
      assert.ok(relDiff(h2.val_losses, h1.val_losses) < 1e-6, "validation losses");
      assert.match(
        await Deno.readTextFile(`${t.dir}/two/r/train.log`),
        /data-parallel: 2 ranks on 1 node\(s\), .* 1 BLAS thread\(s\) per rank/,
      );
      assert.ok(!/\[rank 1\]/.test(two.stderr + two.stdout), "rank 1 stays silent");
    },
  });

  Deno.test({
    name:
      `${name}: two ranks on webgpu (the GPU engine: one all-reduce of its flat gradient per step) train the ` +
      "model of one webgpu process",
    ignore: ignore || name !== "MPICH" || !(await gpuAdapter()),
    async fn() {
      await using t = await tempDir();
      // the same micro-batches on both sides; one process sums them on the GPU, two ranks over MPI (float32 sums in
      // another order: ~1e-6 after 2 epochs, measured)
      const common = ["--epochs", "2", "--run-name", "r", "--backend", "webgpu", "--micro-batch", "2"];
      const one = await runTrain([...common, "--results-dir", `${t.dir}/one`]);
      assert.equal(one.code, 0, one.stderr);
      const two = await mpiTrain(launcher, env, 2, [...common, "--results-dir", `${t.dir}/two`]);
      assert.equal(two.code, 0, two.stderr);
      const hashes = [...two.stderr.matchAll(/rank (\d) weights sha256 ([0-9a-f]{64})/g)].map((m) => m[2]);
      assert.equal(hashes.length, 2, two.stderr);
      assert.equal(hashes[0], hashes[1], "rank 0 and rank 1 hold the same weights");
      const w1 = await weights(`${t.dir}/one/r/checkpoints/final_checkpoint.safetensors`);
      const w2 = await weights(`${t.dir}/two/r/checkpoints/final_checkpoint.safetensors`);
      assert.ok(relDiff(w2, w1) < 1e-5, `weights differ by ${relDiff(w2, w1)}`);
      const [h1, h2] = [await history(`${t.dir}/one/r`), await history(`${t.dir}/two/r`)];
      assert.ok(relDiff(h2.train_losses, h1.train_losses) < 1e-5, "training losses");
      assert.ok(relDiff(h2.val_losses, h1.val_losses) < 1e-5, "validation losses");
    },
  });

  Deno.test({
    name:
      `${name}: SIGTERM to the launcher stops every rank with one resumable checkpoint; any rank count resumes`,
    ignore,
    async fn() {
      await using t = await tempDir();
      // long enough that the signal lands mid-run (Open MPI delivers it 3 s late)
      const target = name === "MPICH" ? 6 : 12;
      // float32 summation-order differences grow with the epochs: ~1e-7 after 6, ~5e-6 after 12 (measured with
      // the reference's plain output); the default residual model's validation loss, a small correction's, shows
      // them ~10x larger (1.1e-6 after 6 epochs, measured)
      const tol = target > 6 ? 2e-5 : 5e-6;
      const epochs = ["--epochs", String(target)];
      const common = [...epochs, "--run-name", "r", "--save-checkpoint-every", "100"];
      const full1 = await runTrain([...common, "--results-dir", `${t.dir}/full1`]);
      assert.equal(full1.code, 0, full1.stderr);
      const full2 = await mpiTrain(launcher, env, 2, [...common, "--results-dir", `${t.dir}/full2`]);
      assert.equal(full2.code, 0, full2.stderr);
      for (const resumeRanks of [2, 1]) {
        const rd = `${t.dir}/stop${resumeRanks}`;
        const [cmd, ...rest] = await mpiCommand(launcher, 2, [...common, "--results-dir", rd]);
        const child = new Deno.Command(cmd, {
          args: rest,
          // slow file writes down so that the signal lands mid-run
          env: {
            ...env,
            GINO_GW_TEST_WRITE_DELAY_MS: "150",
            GINO_GW_TEST_RANK_REPORT: "1",
            GINO_GW_STATUS_FILE: `${rd}/status`,
          },
          stdout: "null",
          stderr: "piped",
          cwd: ROOT,
        }).spawn();
        const latest = `${rd}/r/checkpoints/latest_checkpoint.safetensors`;
        for (let i = 0; i < 3000 && !(await exists(latest)); i++) await sleep(10);
        child.kill("SIGTERM");
        const status = await child.output();
        const err = new TextDecoder().decode(status.stderr);
        // Hydra passes the ranks' exit code 3 on; Open MPI's launcher reports 1 after any signal
        // every rank stops with status 3 and says so in the status file; the launcher's own status is not
        // reliable after a signal (Hydra sometimes reports 0, Open MPI's launcher 1)
        assert.deepEqual([...err.matchAll(/rank (\d) exit status (\d+)/g)].map((m) => m[2]), ["3", "3"], err);
        assert.equal(await Deno.readTextFile(`${rd}/status`), "3\n");
        assert.ok([0, 3, 1].includes(status.code), err);
        const h = await history(`${rd}/r`);
        assert.match(h.sessions.at(-1).exit, /^stopped by SIGTERM/);
        assert.ok(h.train_losses.length < target, `stopped before the end (${h.train_losses.length} epochs)`);
        const resume = [...epochs, "--results-dir", rd, "--resume-from", "auto"];
        const resumed = resumeRanks === 1 ? await runTrain(resume) : await mpiTrain(launcher, env, 2, resume);
        assert.equal(resumed.code, 0, resumed.stderr);
        const wr = await weights(`${rd}/r/checkpoints/final_checkpoint.safetensors`);
        const hr = await history(`${rd}/r`);
        for (const ref of ["full1", "full2"]) {
          const wf = await weights(`${t.dir}/${ref}/r/checkpoints/final_checkpoint.safetensors`);
          assert.ok(relDiff(wr, wf) < tol, `${rd} vs ${ref}: weights differ by ${relDiff(wr, wf)}`);
          const hf = await history(`${t.dir}/${ref}/r`);
          assert.equal(hr.val_losses.length, hf.val_losses.length);
          assert.ok(
            relDiff(hr.val_losses, hf.val_losses) < tol,
            `${rd} vs ${ref}: validation losses differ by ${relDiff(hr.val_losses, hf.val_losses)}`,
          );
        }
      }
    },
  });
}

Deno.test({
  name: "MPICH: ranks that see different data are refused before anything is written",
  ignore: !which("mpiexec.mpich"),
  async fn() {
    await using t = await tempDir();
    const data = await tinyPatchData();
    // the same relative --base-data-dir is other data in each rank's working folder
    await Deno.mkdir(`${t.dir}/a`);
    await Deno.mkdir(`${t.dir}/b/data/filter_patch`, { recursive: true });
    await Deno.symlink(data, `${t.dir}/a/data`);
    // rank 1 sees only the first patch of the same data
    const patch = `${t.dir}/b/data/filter_patch/patch_0000`;
    await Deno.mkdir(patch);
    for await (const e of Deno.readDir(`${data}/filter_patch/patch_0000`)) {
      await Deno.copyFile(`${data}/filter_patch/patch_0000/${e.name}`, `${patch}/${e.name}`);
    }
    const cmd = [
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}train.ts`,
      ...TINY_TRAIN_ARGS,
      "--epochs",
      "1",
      "--base-data-dir",
      "data",
      "--results-dir",
      `${t.dir}/res`,
    ];
    const out = await new Deno.Command("mpiexec.mpich", {
      args: ["-n", "1", "-wdir", `${t.dir}/a`, ...cmd, ":", "-n", "1", "-wdir", `${t.dir}/b`, ...cmd],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, err);
    assert.match(err, /error: .*loaded other data than rank 0 .*same --base-data-dir/);
    assert.ok(!(await Deno.stat(`${t.dir}/res`).then(() => true, () => false)), "no run folder");
  },
});

Deno.test({
  name:
    "MPICH: a rank that dies takes the job down; the run resumes from its last checkpoint with one process",
  ignore: !which("mpiexec.mpich"),
  async fn() {
    await using t = await tempDir();
    const common = ["--epochs", "4", "--run-name", "r"];
    const full = await runTrain([...common, "--results-dir", `${t.dir}/full`]);
    assert.equal(full.code, 0, full.stderr);
    const data = await tinyPatchData();
    const rank = (env: string[]) => [
      "-n",
      "1",
      "env",
      ...env,
      Deno.execPath(),
      "run",
      "-A",
      `${ROOT}train.ts`,
      ...TINY_TRAIN_ARGS,
      ...common,
      "--base-data-dir",
      data,
      "--results-dir",
      `${t.dir}/r`,
    ];
    // rank 1 is killed (SIGKILL, no chance to clean up) after step 9, in the second epoch
    const child = new Deno.Command("mpiexec.mpich", {
      args: [...rank([]), ":", ...rank(["GINO_GW_TEST_SIGKILL_AFTER_STEP=9"])],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    const out = await child.output();
    clearTimeout(timer);
    assert.notEqual(out.code, 0, "the job failed as a whole");
    const resumed = await runTrain(["--epochs", "4", "--results-dir", `${t.dir}/r`, "--resume-from", "auto"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const h = await history(`${t.dir}/r/r`);
    assert.match(h.sessions[0].exit, /^killed/);
    const wr = await weights(`${t.dir}/r/r/checkpoints/final_checkpoint.safetensors`);
    const wf = await weights(`${t.dir}/full/r/checkpoints/final_checkpoint.safetensors`);
    assert.ok(relDiff(wr, wf) < 1e-6, `weights differ by ${relDiff(wr, wf)}`);
  },
});

Deno.test("without launcher variables no MPI library is loaded, and a launch without a library is a clear error", async () => {
  assert.equal(detectLaunch({}), undefined);
  assert.deepEqual(detectLaunch({ OMPI_COMM_WORLD_RANK: "0", OMPI_COMM_WORLD_SIZE: "2" }), {
    rank: 0,
    size: 2,
    localSize: undefined,
    family: "openmpi",
  });
  assert.equal(initWorld({ GINO_GW_MPI_LIB: "/nonexistent/libmpi.so" }), SINGLE);
  assert.equal(mpiLibraryLoaded(), undefined);
  await using t = await tempDir();
  const plain = await runTrain(["--epochs", "1", "--results-dir", t.dir], {
    GINO_GW_MPI_LIB: "/nonexistent/libmpi.so",
  });
  assert.equal(plain.code, 0, plain.stderr);
  const bad = await runTrain(["--epochs", "1", "--results-dir", `${t.dir}/b`], {
    PMI_RANK: "0",
    PMI_SIZE: "2",
    GINO_GW_MPI_LIB: "/nonexistent/libmpi.so",
  });
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /^error: this process was started by an MPI launcher, but no MPI library could be loaded .*apt-get install mpich/m,
  );
  assert.ok(!(await Deno.stat(`${t.dir}/b`).then(() => true, () => false)), "nothing written");
});
