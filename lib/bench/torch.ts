/**
 * `deno task bench step --torch`: this toolkit's training step against the same step in PyTorch
 * (`bench/gino_torch.py`: the reference GINO with neighbour lists computed once and vectorised segment
 * reductions, the fastest a PyTorch user gets on CPU), on the same points, each side in its own process (so each
 * peak RSS is its own), alternated in one run. Named cases: `small` (N 2000, B 8, latent 16, r 0.1), `dense`
 * (r 0.35), `large` (latent 32) and `real` (N 3500, B 32, latent 32: a real patch).
 *
 * @module
 */

import { writeNpy } from "../io/npy.ts";
import { median } from "./timing.ts";
import { benchPoints } from "./step.ts";
import type { StepReport } from "./step.ts";
import { ToolError } from "../errors.ts";
import { BENCH_RUN, jsonChild } from "./child.ts";
import { formatGpuProfile, formatProfile } from "./profile.ts";
import type { ProfileReport } from "./profile.ts";
import type { ProfiledDispatch } from "../model/gpu/engine.ts";

/** A benchmark case: points, batch, latent grid, radius. */
export interface StepCase {
  /** Its name. */
  name: string;
  /** Points of the patch. */
  points: number;
  /** Batch size. */
  batch: number;
  /** Latent grid per axis. */
  latent: number;
  /** GNO radius. */
  radius: number;
}

/** The named cases of `--case`. */
export const STEP_CASES: Record<string, StepCase> = {
  small: { name: "small", points: 2000, batch: 8, latent: 16, radius: 0.1 },
  dense: { name: "dense", points: 2000, batch: 8, latent: 16, radius: 0.35 },
  large: { name: "large", points: 2000, batch: 8, latent: 32, radius: 0.1 },
  real: { name: "real", points: 3500, batch: 32, latent: 32, radius: 0.1 },
};

/** One case's figures: medians over the alternated runs. */
export interface TorchComparison {
  case: StepCase;
  ours_ms: number;
  torch_ms: number;
  speedup: number;
  ours_rss_mb: number;
  torch_rss_mb: number;
  /** GPU memory: ours held by the engine and tensors, PyTorch's peak allocation (null on the CPU). */
  ours_gpu_mb: number | null;
  torch_gpu_mb: number | null;
  /** Our GPU dispatches per step (webgpu), null elsewhere. */
  ours_dispatches: number | null;
  micro_batch: number;
  edges: [number, number];
  torch_edges: [number, number];
  /** Parameters of the model on each side (the same model: 10,552,340 for the reference sizes). */
  parameters: [number, number];
}

/** Times each case on both sides (`repeats` alternated runs each) and prints a table. */
export async function benchStepVsTorch(
  cases: StepCase[],
  o: {
    python: string;
    threads: number;
    steps: number;
    repeats: number;
    backend: string;
    json: boolean;
    /** PyTorch's device: cpu, or cuda (compare with `--backend webgpu` on the same GPU). */
    device?: string;
    /** Then our side's profile of each case (per dispatch on webgpu), each in a run of its own. */
    profile?: boolean;
  },
): Promise<TorchComparison[]> {
  // beside the sources, or (run from the bundle in dist/) in the project's bench/ folder
  const script = new URL(
    import.meta.url.endsWith(".ts") ? "../../bench/gino_torch.py" : "../bench/gino_torch.py",
    import.meta.url,
  ).pathname;
  await checkTorch(o.python);
  const tmp = await Deno.makeTempDir({ prefix: "gino-gw-bench-torch-" });
  const results: TorchComparison[] = [];
  const device = o.device ?? "cpu";
  console.log(
    `# bench step vs PyTorch on ${device} (ours: --backend ${o.backend}; ${o.threads} threads each side, median ` +
      `of ${o.steps} steps after a warm-up, ${o.repeats} alternated runs)`,
  );
  console.log(
    "case    N     B   latent  r     edges in/out    ours ms  torch ms  speed-up  ours RSS  torch RSS",
  );
  try {
    for (const c of cases) {
      const pts = `${tmp}/${c.name}.npy`;
      await writeNpy(pts, [c.points, 3], benchPoints(c.points));
      const ours: StepReport[] = [], torch: Record<string, unknown>[] = [];
      for (let i = 0; i < o.repeats; i++) {
        ours.push(
          await jsonChild([
            ...BENCH_RUN,
            "step",
            "--json",
            ...caseArgs(c),
            "--steps",
            String(o.steps),
            "--backend",
            o.backend,
          ], { OPENBLAS_NUM_THREADS: String(o.threads) }) as StepReport,
        );
        torch.push(
          await jsonChild([
            o.python,
            script,
            "--points",
            pts,
            "--latent",
            String(c.latent),
            "--radius",
            String(c.radius),
            "--batch",
            String(c.batch),
            "--steps",
            String(o.steps),
            "--threads",
            String(o.threads),
            "--device",
            device,
          ]),
        );
      }
      const r = summarise(c, ours, torch);
      results.push(r);
      console.log(row(r));
    }
    for (const c of o.profile ? cases : []) {
      // a run of its own: timing every dispatch slows the step
      const p = await jsonChild([
        ...BENCH_RUN,
        "step",
        "--json",
        "--profile",
        ...caseArgs(c),
        "--steps",
        String(o.steps),
        "--backend",
        o.backend,
      ], { OPENBLAS_NUM_THREADS: String(o.threads) });
      console.log(`\n# ${c.name}: our step, profiled`);
      if (p.gpu_profile) {
        console.log(
          formatGpuProfile(p.gpu_profile as ProfiledDispatch[], p.steps as number, p.wall_ms as number),
        );
      } else if (p.profile) console.log(formatProfile(p.profile as ProfileReport));
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  if (o.json) console.log(JSON.stringify(results));
  return results;
}

function caseArgs(c: StepCase): string[] {
  return [
    "--points",
    String(c.points),
    "--batch",
    String(c.batch),
    "--latent",
    String(c.latent),
    "--radius",
    String(c.radius),
  ];
}

function summarise(c: StepCase, ours: StepReport[], torch: Record<string, unknown>[]): TorchComparison {
  const ms = median(ours.map((r) => r.step_ms)), tms = median(torch.map((r) => r.step_ms as number));
  return {
    case: c,
    ours_ms: ms,
    torch_ms: tms,
    speedup: tms / ms,
    ours_rss_mb: median(ours.map((r) => r.peak_rss_mb)),
    torch_rss_mb: median(torch.map((r) => r.peak_rss_mb as number)),
    ours_gpu_mb: (ours[0].gpu_memory_mb as number | null) ?? null,
    torch_gpu_mb: (torch[0].gpu_peak_mb as number | null) ?? null,
    ours_dispatches: (ours[0].gpu_per_step as { dispatches: number } | null)?.dispatches ?? null,
    micro_batch: ours[0].micro_batch as number,
    edges: [ours[0].edges_in as number, ours[0].edges_out as number],
    torch_edges: [torch[0].edges_in as number, torch[0].edges_out as number],
    parameters: [ours[0].parameters as number, torch[0].parameters as number],
  };
}

function row(r: TorchComparison): string {
  const c = r.case;
  const edges = `${r.edges[0]}/${r.edges[1]}` +
    (r.edges[0] === r.torch_edges[0] && r.edges[1] === r.torch_edges[1]
      ? ""
      : ` (torch ${r.torch_edges.join("/")})`);
  return [
    c.name.padEnd(7),
    String(c.points).padEnd(5),
    String(c.batch).padEnd(3),
    `${c.latent}^3`.padEnd(7),
    String(c.radius).padEnd(5),
    edges.padEnd(15),
    r.ours_ms.toFixed(r.ours_ms < 100 ? 1 : 0).padStart(7),
    r.torch_ms.toFixed(r.torch_ms < 100 ? 1 : 0).padStart(9),
    `${r.speedup.toFixed(2)}x`.padStart(9),
    `${r.ours_rss_mb.toFixed(0)} MiB`.padStart(9),
    `${r.torch_rss_mb.toFixed(0)} MiB`.padStart(10),
    r.micro_batch < c.batch ? ` (ours in micro-batches of ${r.micro_batch})` : "",
    r.torch_gpu_mb !== null
      ? ` GPU memory ${r.ours_gpu_mb?.toFixed(0) ?? "?"} / ${r.torch_gpu_mb.toFixed(0)} MiB`
      : "",
    r.ours_dispatches !== null ? ` (${r.ours_dispatches.toFixed(0)} dispatches per step)` : "",
  ].join(" ");
}

async function checkTorch(python: string): Promise<void> {
  let ok = false;
  try {
    ok =
      (await new Deno.Command(python, { args: ["-c", "import torch, numpy"], stdout: "null", stderr: "null" })
        .output()).success;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new ToolError(
      `--torch needs PyTorch and NumPy under ${python} (Debian: apt-get install python3-torch; or name another ` +
        `interpreter with --python)`,
    );
  }
}
