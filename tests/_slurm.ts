// A Slurm cluster of this one machine for the tests: Debian's slurm-wlm (slurmctld and slurmd), munge for
// authentication, with its own configuration, ports and folders.
const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The path of a command (PATH, then the sbin folders), or undefined. */
export function find(cmd: string): string | undefined {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"]) {
    try {
      if (Deno.statSync(`${dir}/${cmd}`).isFile) return `${dir}/${cmd}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Two ports in a high range (tests run without network permission: a port taken is found when a daemon fails). */
function randomPorts(): number {
  return 20000 + 2 * Math.floor(Math.random() * 15000);
}

/** A Slurm cluster of this one machine. */
export class LocalSlurm {
  procs: Deno.ChildProcess[] = [];
  constructor(readonly dir: string, readonly env: Record<string, string>) {}

  /** Starts munged, slurmctld and slurmd (three tries with other ports); a string says why it could not. */
  static async start(dir: string): Promise<LocalSlurm | string> {
    let why = "";
    for (let attempt = 0; attempt < 3; attempt++) {
      const s = await LocalSlurm.#start(`${dir}/${attempt}`);
      if (typeof s !== "string") return s;
      why = s;
      if (/not found|need root/.test(s)) break;
    }
    return why;
  }

  static async #start(dir: string): Promise<LocalSlurm | string> {
    const bins = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol"];
    const missing = bins.filter((b) => !find(b));
    if (missing.length) return `${missing.join(", ")} not found (Debian: apt-get install slurm-wlm munge)`;
    if (Deno.uid?.() !== 0) return "the daemons of a test cluster need root";
    const host = text(new Deno.Command("hostname", { args: ["-s"] }).outputSync().stdout).trim();
    for (const d of ["state", "spool", "log"]) await Deno.mkdir(`${dir}/${d}`, { recursive: true });
    const key = crypto.getRandomValues(new Uint8Array(1024));
    await Deno.writeFile(`${dir}/munge.key`, key, { mode: 0o600 });
    const port = randomPorts();
    const conf = [
      "ClusterName=ginotest",
      `SlurmctldHost=${host}`,
      "SlurmUser=root",
      "SlurmdUser=root",
      `SlurmctldPort=${port}`,
      `SlurmdPort=${port + 1}`,
      "AuthType=auth/munge",
      `AuthInfo=socket=${dir}/munge.sock`,
      "CredType=cred/munge",
      `StateSaveLocation=${dir}/state`,
      `SlurmdSpoolDir=${dir}/spool`,
      `SlurmctldPidFile=${dir}/slurmctld.pid`,
      `SlurmdPidFile=${dir}/slurmd.pid`,
      `SlurmctldLogFile=${dir}/log/slurmctld.log`,
      `SlurmdLogFile=${dir}/log/slurmd.log`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "JobAcctGatherType=jobacct_gather/none",
      "AccountingStorageType=accounting_storage/none",
      "SchedulerType=sched/builtin",
      "SelectType=select/cons_tres",
      "SelectTypeParameters=CR_Core",
      "MpiDefault=none",
      "ReturnToService=2",
      "KillWait=30",
      "MinJobAge=600",
      "SlurmdParameters=config_overrides",
      `NodeName=${host} CPUs=16 RealMemory=70000 State=UNKNOWN`,
      "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    ].join("\n") + "\n";
    await Deno.writeTextFile(`${dir}/slurm.conf`, conf);
    const env = { SLURM_CONF: `${dir}/slurm.conf` };
    const s = new LocalSlurm(dir, env);
    const spawn = (cmd: string, args: string[], log: string) => {
      const p = new Deno.Command(find(cmd)!, { args, env, stdout: "piped", stderr: "piped" }).spawn();
      (async () => {
        const f = await Deno.open(`${dir}/log/${log}`, { write: true, create: true, append: true });
        const w = f.writable.getWriter();
        for await (const c of p.stdout) await w.write(c);
        for await (const c of p.stderr) await w.write(c);
        await w.close();
      })().catch(() => {});
      s.procs.push(p);
    };
    spawn("munged", [
      "-f",
      "-F",
      "-S",
      `${dir}/munge.sock`,
      `--key-file=${dir}/munge.key`,
      `--pid-file=${dir}/munged.pid`,
      `--seed-file=${dir}/munged.seed`,
      `--log-file=${dir}/log/munged.log`,
    ], "munged.out");
    for (let i = 0; i < 50 && !(await Deno.stat(`${dir}/munge.sock`).then(() => true, () => false)); i++) {
      await sleep(100);
    }
    spawn("slurmctld", ["-D", "-f", `${dir}/slurm.conf`], "slurmctld.out");
    spawn("slurmd", ["-D", "-f", `${dir}/slurm.conf`], "slurmd.out");
    for (let i = 0; i < 100; i++) {
      const o = await s.cmd("sinfo", ["-h", "-o", "%T"]);
      if (o.code === 0 && /idle/.test(o.stdout)) return s;
      await sleep(300);
    }
    const logs = await Promise.all(
      ["slurmctld.out", "slurmd.out", "slurmctld.log", "slurmd.log"].map((f) =>
        Deno.readTextFile(`${dir}/log/${f}`).catch(() => "")
      ),
    );
    await s.stop();
    return `Slurm did not start: ${logs.join("\n").trim().split("\n").slice(-6).join(" | ")}`;
  }

  /** Runs a command of the cluster (sbatch, squeue, qsub, ...) in `cwd` (default: the project folder). */
  async cmd(cmd: string, args: string[], env: Record<string, string> = {}, cwd = ROOT) {
    const o = await new Deno.Command(find(cmd)!, {
      args,
      env: { ...this.env, ...env },
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: o.code, stdout: text(o.stdout), stderr: text(o.stderr) };
  }

  /** Waits until no job is pending or running (at most `ms`). */
  async idle(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const q = await this.cmd("squeue", ["-h", "-o", "%i %T"]);
      if (q.code === 0 && q.stdout.trim() === "") return true;
      await sleep(1000);
    }
    return false;
  }

  async stop(): Promise<void> {
    for (const p of this.procs.reverse()) {
      try {
        p.kill("SIGTERM");
      } catch {
        // gone
      }
      await p.status;
    }
  }
}
