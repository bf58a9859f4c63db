// The READMEs cannot rot: their TypeScript blocks run as doc tests (`deno test --doc README.md`, part of
// `deno task test`), and every `deno task` command line in their shell blocks names a task that exists and only
// flags that the tool accepts.
import assert from "node:assert/strict";
import { runScript } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SCRIPT: Record<string, string> = {
  train: "train.ts",
  prepare: "prepare.ts",
  henry: "henry.ts",
  bench: "bench.ts",
  ckpt: "manage_checkpoints.ts",
  predict: "predict.ts",
};

/** `deno task ...` command lines of a markdown file's shell blocks and inline code. */
function commandLines(text: string): string[] {
  const lines: string[] = [];
  for (const m of text.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)) lines.push(...m[1].split("\n"));
  for (const m of text.matchAll(/`([^`\n]*deno task [^`\n]*)`/g)) lines.push(m[1]);
  return lines.map((l) => l.replace(/\s#.*$/, "").trim()).filter((l) => /\bdeno(@[\d.]+)? task /.test(l));
}

Deno.test("every deno task command in the READMEs names a task that exists, with flags the tool accepts", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks as Record<string, string>;
  const help = new Map<string, string>();
  const problems: string[] = [];
  let checked = 0;
  for (const file of ["README.md", "hpc/README.md", "data/README.md"]) {
    const text = await Deno.readTextFile(`${ROOT}${file}`).catch(() => "");
    for (const line of commandLines(text)) {
      const [, name, rest] = /\btask (\S+)(.*)$/.exec(line)!;
      if (name.startsWith("<")) continue; // a placeholder: `deno task <name>`
      checked++;
      if (!(name in tasks)) {
        problems.push(`${file}: '${line}': no task '${name}' in deno.json`);
        continue;
      }
      const script = SCRIPT[name];
      if (!script) continue; // build and test tasks take no flags of ours
      if (!help.has(script)) help.set(script, (await runScript(script, ["--help"])).stdout);
      for (const flag of rest.matchAll(/(?:^|[\s[])--([a-z][a-z0-9-]*)/g)) {
        const f = flag[1];
        const known = help.get(script)!.includes(`--${f} `) || help.get(script)!.includes(`--${f}\n`) ||
          help.get(script)!.includes(`--${f.replace(/^no-/, "")} / --${f}`);
        if (!known) problems.push(`${file}: '${line}': ${script} has no flag --${f}`);
      }
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(checked >= 20, `only ${checked} command lines found`);
});

Deno.test("createGino before initBackend() is one clear error that says what to call", async () => {
  const code = `import { createGino } from "${ROOT}mod.ts";
try { createGino({}); console.log("created"); } catch (e) { console.log(e.name, e.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--config", `${ROOT}deno.json`, code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.match(
    new TextDecoder().decode(out.stdout),
    /^ToolError no compute backend is initialised: call `await initBackend\(\)` \(from mod\.ts\) before creating a GINO/,
  );
});
