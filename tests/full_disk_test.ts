// A full disk, for real: `prepare`, `train` (a new run and a resumed one, with the job scripts' status file),
// `ckpt backup/clean` and `predict` write to a small tmpfs that is made full right before each of their writes in
// turn (GINO_GW_TEST_FULL_AT fills the file system just before the n-th write; the write then meets a really full
// disk). Each time: one error line naming the file and the full disk, exit status 2, every file written before
// still whole, no temporary or torn file left; after space is freed the command runs again, and a run resumes and
// ends bitwise equal to an uninterrupted one.
//
// Mounting needs root (as in CI); otherwise the tests are skipped, saying why. Every write of a training session
// (new and resumed), of predict and of a 2-rank MPI run is tried; the resume after space is freed is checked
// bitwise after the first write of each kind (GINO_GW_FULL_DISK_ALL=1: after every write).
import assert from "node:assert/strict";
import { readNpy } from "../lib/io/npy.ts";
import { verifyCheckpointBytes } from "../lib/train/checkpoint.ts";
import {
  LENGTH_FREE_SCHEDULE,
  modelBytes,
  mpiTrainArgs,
  runScript,
  tempDir,
  TINY_TRAIN_ARGS,
  tinyPatchData,
  which,
} from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const ALL = Deno.env.get("GINO_GW_FULL_DISK_ALL") === "1";

/** Why the tests cannot mount a tmpfs here (undefined: they can). */
const cannot = (() => {
  if (Deno.build.os !== "linux") return "tmpfs mounts are a Linux feature";
  if (Deno.uid() !== 0) return "mounting a size-limited tmpfs needs root (CI runs as root)";
  const dir = Deno.makeTempDirSync({ prefix: "gino-gw-mount-probe-" });
  try {
    const m = new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir],
      stderr: "piped",
    })
      .outputSync();
    if (!m.success) return `mount -t tmpfs failed: ${new TextDecoder().decode(m.stderr).trim()}`;
    new Deno.Command("umount", { args: [dir] }).outputSync();
    return undefined;
  } catch (e) {
    return `cannot run mount: ${(e as Error).message}`;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();
if (cannot) console.log(`full disk tests skipped: ${cannot}`);

/** A fresh tmpfs of `mib` MiB, unmounted by the returned cleanup. */
async function tmpfs(mib: number) {
  const dir = await Deno.makeTempDir({ prefix: "gino-gw-full-" });
  const m = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", `size=${mib}m`, "tmpfs", dir] })
    .output();
  assert.ok(m.success, "mount failed");
  return {
    dir,
    filler: `${dir}/.filler`,
    /** Frees the space the filler took. */
    free: () => Deno.remove(`${dir}/.filler`).catch(() => {}),
    [Symbol.asyncDispose]: async () => {
      await new Deno.Command("umount", { args: ["-l", dir] }).output();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The write trace of one command: [n, path] per write. */
async function readTrace(file: string): Promise<[number, string][]> {
  const text = await Deno.readTextFile(file);
  return text.trim().split("\n").map((l) => l.split("\t")).map(([n, p]) => [Number(n), p]);
}

/** Every problem of the files below `dir`: temporaries left, torn or damaged files, by kind. */
async function damaged(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.name === ".filler") continue;
      if (/\.tmp$|\.tmp-\d+$|\.old-\d+$/.test(e.name)) out.push(`${p}: temporary left behind`);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) {
        const why = await fileProblem(p);
        if (why) out.push(`${p}: ${why}`);
      }
    }
  };
  await walk(dir);
  return out;
}

async function fileProblem(p: string): Promise<string | undefined> {
  const bytes = await Deno.readFile(p);
  const text = () => new TextDecoder().decode(bytes);
  const name = p.slice(p.lastIndexOf("/") + 1);
  try {
    if (name.endsWith(".safetensors")) {
      const v = await verifyCheckpointBytes(bytes, p);
      return v.ok ? undefined : v.problems.join("; ");
    }
    if (name.endsWith(".json")) JSON.parse(text());
    else if (name.endsWith(".jsonl") || name === "train.log" || name.endsWith(".csv")) {
      if (bytes.length && bytes[bytes.length - 1] !== 10) return "last line torn";
      if (name.endsWith(".jsonl")) text().trim().split("\n").forEach((l) => JSON.parse(l));
      if (name.endsWith(".csv")) {
        const widths = new Set(text().trim().split("\n").map((l) => l.split(",").length));
        if (widths.size !== 1) return "ragged";
      }
    } else if (name.endsWith(".svg")) {
      if (!text().trimEnd().endsWith("</svg>")) return "svg cut short";
    } else if (name.endsWith(".html")) {
      if (!text().trimEnd().endsWith("</html>")) return "html cut short";
    } else if (name.endsWith(".vtu") || name.endsWith(".pvd")) {
      if (!text().trimEnd().endsWith("</VTKFile>")) return "VTK file cut short";
    } else if (name.endsWith(".png")) {
      const end = new TextDecoder().decode(bytes.subarray(bytes.length - 8, bytes.length - 4));
      if (bytes[1] !== 0x50 || end !== "IEND") return "PNG cut short";
    } else if (name.endsWith(".npy")) {
      const a = await readNpy(p);
      if (a.data.length !== a.shape.reduce((x, y) => x * y, 1)) return "npy size";
    }
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/** Relative path -> bytes of every file below `dir`. */
async function snapshot(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.name === ".filler") continue;
      if (e.isDirectory) await walk(`${d}/${e.name}`, `${rel}${e.name}/`);
      else if (e.isFile) out.set(`${rel}${e.name}`, await Deno.readFile(`${d}/${e.name}`));
    }
  };
  await walk(dir, "");
  return out;
}

/** Checks a command that met a full disk: exit 2 (or 0 when nothing needed more space), one error line. */
function checkFailure(r: { code: number; stderr: string }, where: string, what: string): boolean {
  const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
  if (r.code === 0) {
    assert.equal(errors.length, 0, `${what}: exit 0 with an error line\n${r.stderr}`);
    return false;
  }
  assert.equal(r.code, 2, `${what}: exit status ${r.code}, expected 2\n${r.stderr}`);
  assert.equal(errors.length, 1, `${what}: expected one error line\n${r.stderr}`);
  assert.match(errors[0], /the disk is full: could not write /, `${what}: ${errors[0]}`);
  const path = /could not write (\S+) \(/.exec(errors[0])?.[1] ?? "";
  assert.ok(path.startsWith(where), `${what}: the error names ${path}, not a file in ${where}`);
  assert.doesNotMatch(errors[0], /internal error/, what);
  return true;
}

/**
 * A failed session tells the truth where the user looks: no "done" in its part of train.log, whose last line is
 * the error with exit status 2; its record in loss_history.json says it failed, with the status.
 */
async function checkLastWords(run: string, before: Map<string, Uint8Array>, what: string): Promise<void> {
  const dec = new TextDecoder();
  const log = await Deno.readTextFile(`${run}/train.log`).catch(() => "");
  const mine = log.slice(dec.decode(before.get("train.log") ?? new Uint8Array()).length);
  assert.doesNotMatch(mine, /\bdone: /, `${what}: train.log says done\n${mine}`);
  if (mine) {
    const last = mine.trimEnd().split("\n").at(-1)!;
    assert.match(
      last,
      /error: the disk is full: could not write .*\(exit status 2\)$/,
      `${what}: train.log ends\n${mine}`,
    );
  }
  const h = await Deno.readTextFile(`${run}/loss_history.json`).then(JSON.parse, () => undefined);
  const earlier = before.has("loss_history.json")
    ? JSON.parse(dec.decode(before.get("loss_history.json"))).sessions.length
    : 0;
  if (h && h.sessions.length > earlier) {
    const s = h.sessions.at(-1);
    assert.equal(s.exit_status, 2, `${what}: the session's record ${JSON.stringify(s)}`);
    assert.match(s.exit, /^failed: the disk is full/, what);
  }
}

// (runs extended to more epochs are compared with uninterrupted ones: a schedule that does not depend on the length)
const TRAIN = [
  ...TINY_TRAIN_ARGS,
  ...LENGTH_FREE_SCHEDULE,
  "--save-checkpoint-every",
  "1",
  "--run-name",
  "r",
];

/** Runs one of the project's scripts with the permissions of its task. */

async function train(results: string, args: string[], env: Record<string, string> = {}) {
  const data = ["--base-data-dir", await tinyPatchData()];
  return await runScript("train.ts", [...data, ...TRAIN, "--results-dir", results, ...args], env);
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

/** The first write of each kind of file (and the last write): the default sample of a long trace. */
function sample(trace: [number, string][]): [number, string][] {
  if (ALL) return trace;
  const seen = new Set<string>();
  return trace.filter(([n, p]) => {
    const kind = p.replace(/\d+/g, "N"); // checkpoint_epoch_0002 and _0003: one kind
    const first = !seen.has(kind);
    seen.add(kind);
    return first || n === trace.length;
  });
}

Deno.test({
  name:
    "full disk: a training run filled before each of its writes stops with one error, keeps what it saved, " +
    "and resumes to the same weights as an uninterrupted run",
  ignore: !!cannot,
  async fn() {
    await using t = await tempDir();
    await using fs = await tmpfs(48);
    const EPOCHS = 3;
    // the reference: one uninterrupted session (on the small disk, with the writes of a new session traced)
    const results = `${fs.dir}/results`, run = `${results}/r`;
    const ref = await train(results, ["--epochs", String(EPOCHS)], {
      GINO_GW_TEST_WRITE_TRACE: `${t.dir}/trace-new`,
    });
    assert.equal(ref.code, 0, ref.stderr);
    const refWeights = await modelBytes(`${run}/checkpoints/final_checkpoint.safetensors`);
    const refLosses = JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`)).train_losses;
    await Deno.remove(results, { recursive: true });
    // a first session of 1 epoch: the starting point of every resumed session
    const first = await train(results, ["--epochs", "1"]);
    assert.equal(first.code, 0, first.stderr);
    const afterFirst = await snapshot(run);
    await new Deno.Command("cp", { args: ["-a", results, `${t.dir}/first`] }).output();
    const resumeArgs = ["--epochs", String(EPOCHS), "--resume-from", "auto"];
    const traceRes = `${t.dir}/trace-resumed`;
    const copyBack = async () => {
      await Deno.remove(results, { recursive: true }).catch(() => {});
      await new Deno.Command("cp", { args: ["-a", `${t.dir}/first`, results] }).output();
    };
    await copyBack();
    const traced = await train(results, resumeArgs, { GINO_GW_TEST_WRITE_TRACE: traceRes });
    assert.equal(traced.code, 0, traced.stderr);
    const resumedWrites = await readTrace(traceRes);
    const newWrites = await readTrace(`${t.dir}/trace-new`);
    const status = `${fs.dir}/.exit_status`;

    // every write of both sessions; the resume after freeing space: after the first write of each kind
    const resumeAfter = new Set([
      ...sample(resumedWrites).map(([n]) => `resumed ${n}`),
      ...sample(newWrites).map(([n]) => `new ${n}`),
    ]);
    const cases: { kind: string; n: number; path: string }[] = [
      ...resumedWrites.map(([n, path]) => ({ kind: "resumed", n, path })),
      ...newWrites.map(([n, path]) => ({ kind: "new", n, path })),
    ];
    let failed = 0;
    const completed: string[] = [];
    for (const c of cases) {
      const what = `${c.kind} session, disk full before write ${c.n} (${c.path.slice(fs.dir.length + 1)})`;
      await fs.free();
      if (c.kind === "resumed") await copyBack();
      else await Deno.remove(results, { recursive: true }).catch(() => {});
      const before = c.kind === "resumed" ? afterFirst : new Map<string, Uint8Array>();
      // as the job scripts do: the status file exists before the trainer starts (it keeps its disk space)
      await Deno.writeTextFile(status, "running\n");
      const r = await train(results, c.kind === "resumed" ? resumeArgs : ["--epochs", String(EPOCHS)], {
        GINO_GW_TEST_FULL_AT: `${c.n}:${fs.filler}`,
        GINO_GW_STATUS_FILE: status,
      });
      if (checkFailure(r, results, what)) {
        failed++;
        await checkLastWords(run, before, what);
      } else completed.push(what);
      assert.equal((await Deno.readTextFile(status)).trim(), String(r.code), `${what}: the status file`);
      // every file is whole; the files of the earlier session are all there
      assert.deepEqual(await damaged(fs.dir), [], what);
      for (const rel of before.keys()) {
        assert.ok(
          await Deno.stat(`${run}/${rel}`).then(() => true, () => false),
          `${what}: ${rel} was removed`,
        );
      }
      // the files this session wrote in full before the disk filled are there
      const trace = c.kind === "resumed" ? resumedWrites : newWrites;
      for (const [k, p] of trace) {
        if (k >= c.n || p.endsWith("/.running") || p.endsWith("/.space_reserve")) continue;
        assert.ok(await Deno.stat(p).then(() => true, () => false), `${what}: ${p}, written before, is gone`);
      }
      // space freed: the run resumes and ends as the uninterrupted one
      await fs.free();
      if (!resumeAfter.has(`${c.kind} ${c.n}`)) continue;
      const again = await train(results, resumeArgs);
      assert.equal(again.code, 0, `${what}: the resume after freeing space failed\n${again.stderr}`);
      assert.deepEqual(await modelBytes(`${run}/checkpoints/final_checkpoint.safetensors`), refWeights, what);
      const h = JSON.parse(await Deno.readTextFile(`${run}/loss_history.json`));
      assert.deepEqual(h.train_losses, refLosses, `${what}: loss history`);
      const epochs = (await Deno.readTextFile(`${run}/metrics.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l).epoch
      );
      assert.deepEqual(epochs, [1, 2, 3], `${what}: metrics.jsonl`);
    }
    assert.ok(
      failed >= cases.length - 3,
      `only ${failed} of ${cases.length} launches met the full disk; completed:\n${completed.join("\n")}`,
    );
    console.log(
      `full disk: all ${cases.length} write points of train tried full (${resumedWrites.length} writes of a ` +
        `resumed session and ${newWrites.length} of a new one); ${failed} stopped with the error, the others ` +
        `had nothing more to write; 0 damaged files; ${resumeAfter.size} resumes after freeing space, each ` +
        `bitwise equal`,
    );
  },
});

Deno.test({
  name:
    "full disk: prepare filled before each of its writes keeps the old patch folder and leaves no temporary",
  ignore: !!cannot,
  async fn() {
    await using t = await tempDir();
    await using fs = await tmpfs(16);
    const base = `${fs.dir}/data`;
    await Deno.mkdir(base, { recursive: true });
    await new Deno.Command("cp", { args: ["-a", `${await tinyPatchData()}/all`, `${base}/all`] }).output();
    const args = ["--base-data-dir", base, "--slice-split", "2", "--quiet"];
    const made = await runScript("prepare.ts", [...args, "--n-patches", "2"]);
    assert.equal(made.code, 0, made.stderr);
    const old = await snapshot(`${base}/filter_patch`);
    // the writes of a replacement (3 patches)
    const traced = await runScript("prepare.ts", [
      ...args,
      "--n-patches",
      "3",
      "--patch-data-subdir",
      "other",
    ], {
      GINO_GW_TEST_WRITE_TRACE: `${t.dir}/trace`,
    });
    assert.equal(traced.code, 0, traced.stderr);
    await Deno.remove(`${base}/other`, { recursive: true });
    const writes = await readTrace(`${t.dir}/trace`);
    for (const [n, p] of writes) {
      const what = `prepare --force, disk full before write ${n} (${p.slice(base.length + 1)})`;
      const r = await runScript("prepare.ts", [...args, "--n-patches", "3", "--force"], {
        GINO_GW_TEST_FULL_AT: `${n}:${fs.filler}`,
      });
      assert.ok(checkFailure(r, base, what), `${what}: it did not fail\n${r.stderr}`);
      assert.deepEqual(await snapshot(`${base}/filter_patch`), old, `${what}: the old patch folder changed`);
      assert.deepEqual(await damaged(fs.dir), [], what);
      await fs.free();
    }
    const r = await runScript("prepare.ts", [...args, "--n-patches", "3", "--force"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(await Deno.readTextFile(`${base}/filter_patch/patches.json`)).patches.length, 3);
    console.log(
      `full disk: ${writes.length} write points of prepare tried full; old folder intact each time`,
    );
  },
});

Deno.test({
  name:
    "full disk: ckpt backup leaves no partial copy; ckpt clean works on a full disk and frees it; predict " +
    "keeps every file whole",
  ignore: !!cannot,
  async fn() {
    await using t = await tempDir();
    await using fs = await tmpfs(48);
    const results = `${fs.dir}/results`, ckpts = `${results}/r/checkpoints`;
    const made = await train(results, ["--epochs", "3"]);
    assert.equal(made.code, 0, made.stderr);
    const latest = `${ckpts}/latest_checkpoint.safetensors`;
    const kept = await snapshot(ckpts);
    // backup: the copy meets the full disk
    const backups = `${fs.dir}/backups`;
    const b = await runScript("manage_checkpoints.ts", ["backup", latest, backups], {
      GINO_GW_TEST_FULL_AT: `1:${fs.filler}`,
    });
    assert.ok(checkFailure(b, backups, "ckpt backup on a full disk"), b.stderr);
    assert.deepEqual([...Deno.readDirSync(backups)], [], "ckpt backup left a file behind");
    assert.deepEqual(await snapshot(ckpts), kept, "ckpt backup changed the checkpoints");
    // clean needs no space: it runs on the full disk and frees some
    const free0 = Deno.statSync(fs.filler).size;
    const c = await runScript("manage_checkpoints.ts", ["clean", `${results}/r`, "1"]);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(
      [...Deno.readDirSync(ckpts)].map((e) => e.name).sort(),
      [
        "best_checkpoint.safetensors",
        "checkpoint_epoch_0003.safetensors",
        "final_checkpoint.safetensors",
        "latest_checkpoint.safetensors",
      ],
    );
    assert.deepEqual(await damaged(fs.dir), []);
    const b2 = await runScript("manage_checkpoints.ts", ["backup", latest, backups]);
    assert.equal(b2.code, 0, `backup after clean freed space\n${b2.stderr}`);
    assert.ok(free0 > 0);
    await fs.free();
    // predict: every write in turn
    const out = `${fs.dir}/pred`;
    const pargs = [latest, "--out", out, "--vtu", "--backend", "wasm"];
    const traced = await runScript("predict.ts", pargs, { GINO_GW_TEST_WRITE_TRACE: `${t.dir}/trace` });
    assert.equal(traced.code, 0, traced.stderr);
    const writes = await readTrace(`${t.dir}/trace`);
    const tried = writes; // every one
    for (const [n, p] of tried) {
      // over a complete prediction: an unfinished one must not pass for it
      assert.ok(await exists(`${out}/metrics.json`));
      const what = `predict, disk full before write ${n} (${p.slice(out.length + 1)})`;
      const r = await runScript("predict.ts", pargs, { GINO_GW_TEST_FULL_AT: `${n}:${fs.filler}` });
      assert.ok(checkFailure(r, out, what), `${what}: it did not fail\n${r.stderr}`);
      assert.deepEqual(await damaged(fs.dir), [], what);
      for (const [k, q] of writes) {
        if (k < n) assert.ok(await exists(q), `${what}: ${q}, written before, is gone`);
      }
      assert.ok(
        !(await exists(`${out}/metrics.json`)),
        `${what}: metrics.json marks an unfinished prediction`,
      );
      await fs.free();
      const again = await runScript("predict.ts", pargs);
      assert.equal(again.code, 0, `${what}: predict after freeing space\n${again.stderr}`);
    }
    console.log(
      `full disk: backup, clean and ${tried.length} of predict's ${writes.length} write points tried full`,
    );
  },
});

Deno.test({
  name:
    "full disk: the PBS job reads the trainer's status from its status file on a full disk and stops the chain",
  ignore: !!cannot,
  async fn() {
    await using t = await tempDir();
    await using fs = await tmpfs(48);
    await Deno.mkdir(`${t.dir}/bin`);
    await Deno.writeTextFile(
      `${t.dir}/bin/qsub`,
      `#!/bin/bash\necho "$@" >> "${t.dir}/qsub.log"\necho 9.test\n`,
    );
    await Deno.chmod(`${t.dir}/bin/qsub`, 0o755);
    const job = async (env: Record<string, string>) => {
      const o = await new Deno.Command("bash", {
        args: [`${ROOT}hpc/train_gino.pbs`],
        env: {
          PATH: `${t.dir}/bin:${Deno.env.get("PATH")}`,
          PBS_JOBID: "8.test",
          PBS_O_WORKDIR: ROOT.replace(/\/$/, ""),
          DENO: Deno.execPath(),
          TRAIN_ARGS: `--base-data-dir ${await tinyPatchData()} --epochs 2 ${TRAIN.join(" ")}`,
          RESULTS_DIR: `${fs.dir}/results`,
          RESUBMIT: "1",
          ...env,
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: o.code, out: new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr) };
    };
    const traced = await job({ GINO_GW_TEST_WRITE_TRACE: `${t.dir}/trace` });
    assert.equal(traced.code, 0, traced.out);
    const writes = await readTrace(`${t.dir}/trace`);
    const at = writes.find(([, p]) => p.endsWith("/latest_checkpoint.safetensors"))![0];
    await Deno.remove(`${fs.dir}/results`, { recursive: true });
    const r = await job({ GINO_GW_TEST_FULL_AT: `${at}:${fs.filler}` });
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /error: the disk is full: could not write \S+latest_checkpoint\.safetensors/);
    assert.match(r.out, /trainer exited with status 2/);
    assert.match(r.out, /the chain stops here/);
    assert.ok(!(await exists(`${t.dir}/qsub.log`)), "a job on a full disk resubmitted itself");
    assert.deepEqual(await damaged(fs.dir), []);
  },
});

const mpich = which("mpiexec.mpich");

Deno.test({
  name:
    "full disk: a 2-rank MPI run filled before each of its writes stops with rank 0's error and status 2, and " +
    "resumes to the uninterrupted weights",
  ignore: !!cannot || !mpich,
  async fn() {
    await using t = await tempDir();
    await using fs = await tmpfs(48);
    const results = `${fs.dir}/results`, run = `${results}/r`, status = `${fs.dir}/.exit_status`;
    const mpi = async (args: string[], env: Record<string, string> = {}) => {
      const o = await new Deno.Command("mpiexec.mpich", {
        args: mpiTrainArgs(await tinyPatchData(), [...TRAIN, "--results-dir", results, ...args]),
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
    };
    const ref = await mpi(["--epochs", "3"], { GINO_GW_TEST_WRITE_TRACE: `${t.dir}/trace` });
    assert.equal(ref.code, 0, ref.stderr);
    const refWeights = await modelBytes(`${run}/checkpoints/final_checkpoint.safetensors`);
    await Deno.remove(results, { recursive: true });
    const writes = await readTrace(`${t.dir}/trace`);
    const resumeAfter = new Set(sample(writes).map(([n]) => n));
    let failed = 0;
    for (const [at, path] of writes) {
      const what = `MPI run, disk full before write ${at} (${path.slice(fs.dir.length + 1)})`;
      await fs.free();
      await Deno.remove(results, { recursive: true }).catch(() => {});
      await Deno.writeTextFile(status, "running\n");
      const r = await mpi(["--epochs", "3"], {
        GINO_GW_TEST_FULL_AT: `${at}:${fs.filler}`,
        GINO_GW_STATUS_FILE: status,
      });
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("error:"));
      if (r.code !== 0) {
        failed++;
        assert.equal(errors.length, 1, `${what}\n${r.stderr}`);
        assert.match(errors[0], /the disk is full: could not write /, what);
        assert.equal((await Deno.readTextFile(status)).trim(), "2", `${what}: the job scripts read status 2`);
      } else assert.equal(errors.length, 0, `${what}\n${r.stderr}`);
      assert.deepEqual(await damaged(fs.dir), [], what);
      if (!resumeAfter.has(at)) continue;
      await fs.free();
      const again = await mpi(["--epochs", "3", "--resume-from", "auto"]);
      assert.equal(again.code, 0, `${what}: the resume\n${again.stderr}`);
      assert.deepEqual(await modelBytes(`${run}/checkpoints/final_checkpoint.safetensors`), refWeights, what);
    }
    assert.ok(failed >= writes.length / 2, `only ${failed} of ${writes.length} launches met the full disk`);
    console.log(
      `full disk: all ${writes.length} write points of a 2-rank MPI run tried full; ${failed} stopped with ` +
        `status 2; ${resumeAfter.size} resumes after freeing space, each bitwise equal`,
    );
  },
});
