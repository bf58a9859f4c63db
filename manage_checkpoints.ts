/**
 * `deno task ckpt <command>`: the checkpoint manager.
 *
 * @module
 */

import { runMain } from "./lib/cli/main.ts";
import { FlagError, formatHelp, parseFlags } from "./lib/cli/flags.ts";
import type { FlagSpec } from "./lib/cli/flags.ts";
import { describeSchedule } from "./lib/train/schedule.ts";
import {
  backupCommand,
  cleanCommand,
  exportCommand,
  importCommand,
  latestCommand,
  listCommand,
  showCommand,
  verifyCommand,
} from "./lib/tools/manager.ts";

const FLAGS: FlagSpec[] = [
  { name: "results-dir", type: "string", default: "results", help: "folder of run folders" },
  { name: "json", type: "boolean", default: false, help: "print JSON instead of text" },
  { name: "dry-run", type: "boolean", default: false, help: "clean: show what would be deleted" },
  { name: "config", type: "string", help: "import: the GINO constructor arguments (JSON)" },
  { name: "out", type: "string", help: "import: the checkpoint to write" },
  { name: "force", type: "boolean", default: false, help: "export, import: replace an existing output file" },
  { name: "help", type: "boolean", default: false, help: "show this help" },
];

const USAGE = `Usage: deno task ckpt <command> [args] [flags]

Commands:
  latest                      the newest valid checkpoint of the newest run
  list                        every run: epochs done/target, best validation loss, last update, size, state,
                              and the chain of scheduler jobs (its first job's id) that trained it
  show PATH                   everything in one checkpoint (settings, losses, optimiser, tensors, integrity)
  verify PATH|RUN             check header, sizes and SHA-256 (exit status 1 when something is wrong)
  clean RUN [KEEP=3]          delete all but the newest KEEP epoch checkpoints (never latest/best/final)
  backup PATH [DEST]          verified copy named by run and epoch (DEST: <results-dir>/backups); never overwrites
  export PATH OUT.safetensors the model weights alone, PyTorch names and layouts (load_state_dict-ready)
  import TORCH.safetensors --config CONFIG.json --out PATH
                              a checkpoint from PyTorch weights; train from it with --resume-from PATH`;

const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
const num = (
  v: number | null,
) => (v === null || v === undefined ? "-" : Number.isFinite(v) ? v.toPrecision(5) : String(v));

async function main(args: string[]): Promise<number> {
  const f = parseFlags(args, FLAGS);
  const [cmd, ...rest] = f._;
  if (f.help) {
    console.log(formatHelp(USAGE, FLAGS));
    return 0;
  }
  if (!cmd) {
    throw new FlagError(
      "name a command: latest, list, show, verify, clean, backup, export or import (see --help)",
    );
  }
  const results = f["results-dir"] as string;
  const json = f.json as boolean;
  const out = (v: unknown, text: () => string) => console.log(json ? JSON.stringify(v, null, 1) : text());
  const need = (i: number, what: string) => {
    if (!rest[i]) throw new FlagError(`${cmd} needs ${what} (see --help)`);
    return rest[i];
  };
  const atMost = (n: number) => {
    if (rest.length > n) {
      throw new FlagError(
        `${cmd} takes at most ${n} argument(s); unexpected: ${rest.slice(n).join(" ")} (see --help)`,
      );
    }
  };
  atMost(
    ({ latest: 0, list: 0, show: 1, verify: 1, clean: 2, backup: 2, export: 2, import: 1 } as Record<
      string,
      number
    >)[cmd] ?? 9,
  );
  switch (cmd) {
    case "latest": {
      const l = await latestCommand(results, (m) => console.error(m));
      out(l, () =>
        [
          `${l.checkpoint}`,
          `  run ${l.run}, epoch ${l.epoch}${
            l.step_in_epoch ? ` (+ ${l.step_in_epoch} batches of the next)` : ""
          }, saved ${l.saved_at}`,
          `  last train loss ${num(l.train_loss)}, last validation loss ${num(l.val_loss)}`,
          `  best validation loss ${num(l.best_val_loss)} (epoch ${
            l.best_epoch ?? "-"
          }), ${l.sessions} session(s), ${mb(l.size_bytes)}`,
        ].join("\n"));
      return 0;
    }
    case "list": {
      const runs = await listCommand(results);
      out(runs, () => {
        if (!runs.length) return `no runs in ${results}`;
        const rows = runs.map((r) => [
          r.run,
          `${r.epochs_done}/${r.epochs_target ?? "?"}`,
          num(r.best_val_loss),
          r.last_update ?? "-",
          mb(r.size_bytes),
          r.state,
          r.chains.length ? r.chains.join(",") : "-",
        ]);
        const head = ["run", "epochs", "best val", "last update", "size", "state", "chain"];
        const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
        return [head, ...rows].map((r) => r.map((c, i) => String(c).padEnd(w[i])).join("  ")).join("\n");
      });
      return 0;
    }
    case "show": {
      const s = await showCommand(need(0, "a checkpoint path"));
      out(s, () =>
        [
          `${s.path}: ${s.integrity.ok ? "integrity OK" : `DAMAGED: ${s.integrity.problems.join("; ")}`}`,
          `epoch ${s.epoch}, batch ${s.step_in_epoch} of the next, global step ${s.global_step}`,
          `losses: train ${s.train_losses.map(num).join(" ")}`,
          `        val   ${s.val_losses.map(num).join(" ")}`,
          `best validation loss ${num(s.best.val_loss)} at epoch ${s.best.epoch ?? "-"}`,
          `learning rate: ${describeSchedule(s.scheduler)}`,
          `optimiser: Adam step ${s.optimizer.step}, betas ${s.optimizer.beta1}/${s.optimizer.beta2}, eps ${s.optimizer.eps}`,
          `data fingerprint ${s.data_fingerprint}; sessions ${s.sessions.length}`,
          `settings: ${JSON.stringify(s.settings)}`,
          `GINO: ${JSON.stringify(s.gino_config)}`,
          `normalisation: ${JSON.stringify(s.normalization)}`,
          `tensors (${s.tensors.length}, ${s.parameters.toLocaleString("en")} model parameters):`,
          ...s.tensors.map((t) => `  ${t.name} ${t.dtype} [${t.shape.join(", ")}] ${t.bytes} B`),
        ].join("\n"));
      return s.integrity.ok ? 0 : 1;
    }
    case "verify": {
      const reports = await verifyCommand(need(0, "a checkpoint path or run"), results);
      out(
        reports,
        () =>
          reports.map((
            r,
          ) => (r.ok
            ? `OK      ${r.path} (epoch ${r.epoch}, sha256 ${r.sha256?.slice(0, 16)}...)`
            : `FAILED  ${r.problems.join("; ")}`)
          ).join("\n"),
      );
      return reports.every((r) => r.ok) ? 0 : 1;
    }
    case "clean": {
      const keepText = rest[1]?.replace(/^KEEP=/i, "");
      if (keepText !== undefined && !/^\d+$/.test(keepText)) {
        throw new FlagError(
          `clean: KEEP must be a whole number >= 0 (epoch checkpoints to keep), got '${rest[1]}'`,
        );
      }
      const keep = keepText === undefined ? 3 : Number(keepText);
      const r = await cleanCommand(need(0, "a run"), results, keep, f["dry-run"] as boolean);
      out(r, () =>
        [
          `${r.dry_run ? "would delete" : "deleted"} ${r.deleted.length} checkpoint(s) in ${r.run}, ${
            r.dry_run ? "freeing" : "freed"
          } ${mb(r.freed_bytes)}`,
          ...r.deleted.map((d) => `  - ${d}`),
          `kept: ${r.kept.join(", ") || "nothing"}`,
        ].join("\n"));
      return 0;
    }
    case "backup": {
      const r = await backupCommand(need(0, "a checkpoint path"), rest[1] ?? `${results}/backups`);
      out(
        r,
        () => `copied ${r.from} -> ${r.to} (verified before and after, sha256 ${r.sha256.slice(0, 16)}...)`,
      );
      return 0;
    }
    case "export": {
      const r = await exportCommand(
        need(0, "a checkpoint path"),
        need(1, "an output file"),
        f.force as boolean,
      );
      out(
        r,
        () =>
          `wrote ${r.out}: ${r.tensors} tensors, ${
            r.parameters.toLocaleString("en")
          } parameters, PyTorch names and layouts`,
      );
      return 0;
    }
    case "import": {
      if (!f.config || !f.out) throw new FlagError("import needs --config CONFIG.json and --out PATH");
      const r = await importCommand(
        need(0, "a PyTorch safetensors file"),
        f.config as string,
        f.out as string,
        f.force as boolean,
      );
      out(
        r,
        () =>
          `wrote ${r.out}; train or fine-tune from it with: deno task train --resume-from ${r.out} --base-data-dir DIR`,
      );
      return 0;
    }
    default:
      throw new FlagError(`unknown command '${cmd}' (see --help)`);
  }
}

if (import.meta.main) await runMain(() => main(Deno.args));
