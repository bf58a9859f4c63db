/**
 * Which MODFLOW 6 files to prepare from: named one by one (`--mf6-grid`, `--mf6-heads`, `--mf6-conc`), or found in
 * a model folder (`--mf6-dir`): its binary grid file, head file and concentration file, by their extensions; a
 * name given explicitly wins over what the folder holds.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** The files found (undefined when no MODFLOW 6 flag was given: prepare reads CSV). */
export async function findMf6Files(
  f: { dir?: string; grid?: string; heads?: string; conc?: string },
): Promise<{ grid: string; heads: string; conc?: string } | undefined> {
  if (!f.dir && !f.grid && !f.heads && !f.conc) return undefined;
  let grid = f.grid, heads = f.heads, conc = f.conc;
  if (f.dir) {
    let names: string[];
    try {
      names = (await Array.fromAsync(Deno.readDir(f.dir))).filter((e) => e.isFile).map((e) => e.name).sort();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new ToolError(`--mf6-dir ${f.dir}: folder not found`);
      throw e;
    }
    const pick = (what: string, flag: string, exts: string[], required: boolean) => {
      const found = names.filter((n) => exts.some((x) => n.toLowerCase().endsWith(x)));
      if (found.length === 1) return `${f.dir}/${found[0]}`;
      if (found.length === 0) {
        if (!required) return undefined;
        throw new ToolError(
          `--mf6-dir ${f.dir}: no ${what} (${exts.join(", ")}) there; name it with ${flag}`,
        );
      }
      // a flow and a transport model both write a grid file of the same grid: take the flow model's
      const gwf = found.filter((n) => !/gwt/i.test(n));
      if (what === "grid file" && gwf.length === 1) return `${f.dir}/${gwf[0]}`;
      throw new ToolError(
        `--mf6-dir ${f.dir}: several ${what}s (${found.join(", ")}); name one with ${flag}`,
      );
    };
    grid ??= pick("grid file", "--mf6-grid", [".grb"], true);
    heads ??= pick("head file", "--mf6-heads", [".hds", ".hed"], true);
    conc ??= pick("concentration file", "--mf6-conc", [".ucn"], false);
  }
  if (!grid) throw new ToolError("--mf6-heads/--mf6-conc need the grid file: --mf6-grid MODEL.dis.grb");
  if (!heads) throw new ToolError("--mf6-grid needs the head file: --mf6-heads MODEL.hds");
  return { grid, heads, conc };
}
