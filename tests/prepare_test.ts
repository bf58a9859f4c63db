import assert from "node:assert/strict";
import { preparePatches } from "../lib/data/prepare.ts";
import { loadPatchDataset } from "../lib/data/dataset.ts";
import { readNpy } from "../lib/io/npy.ts";
import { tempDir, writeRawFolder } from "./_helpers.ts";

Deno.test("preparePatches() splits slices into groups, clusters each, and adds ghost points from neighbours", async () => {
  await using tmp = await tempDir();
  const raw = `${tmp.dir}/all`, out = `${tmp.dir}/filter_patch`;
  const { nodes, values } = await writeRawFolder(raw, { nx: 10, ny: 4, nz: 4, steps: 7 });
  const res = await preparePatches({ rawDir: raw, outDir: out, nPatches: 6, sliceSplit: 2, nGhostPoints: 3 });
  assert.equal(res.patches.length, 6);
  assert.equal(res.steps, 7);
  const meta = JSON.parse(await Deno.readTextFile(`${out}/patches.json`));
  assert.equal(meta.patches.length, 6);
  const owner = new Map<number, number>();
  for (const info of res.patches) {
    const dir = `${out}/${info.name}`;
    const coreNodes = Array.from((await readNpy(`${dir}/core_nodes.npy`)).data as BigInt64Array, Number);
    const ghostNodes = Array.from((await readNpy(`${dir}/ghost_nodes.npy`)).data as BigInt64Array, Number);
    for (const id of coreNodes) {
      assert.ok(!owner.has(id), `node ${id} is core in two patches`);
      owner.set(id, info.id);
    }
    assert.equal(ghostNodes.length, info.ghost);
    assert.ok(info.neighbours.length >= 1);
    assert.ok(info.ghost <= 3 * info.neighbours.length);
    const obs = await readNpy(`${dir}/core_obs.npy`);
    assert.deepEqual(obs.shape, [7, coreNodes.length, 3]);
    // values are those of the raw files for that node and step
    const t = 5, m = coreNodes.length - 1, i = coreNodes[m] - 1;
    for (let c = 0; c < 3; c++) {
      assert.equal(obs.data[(t * coreNodes.length + m) * 3 + c], Math.fround(values(t, i, c)));
    }
    // each slice group's patches hold nodes of that group only (slices 1-2 and 3-4)
    const coords = (await readNpy(`${dir}/core_coords.npy`)).data as Float64Array;
    const zs = new Set(Array.from({ length: coreNodes.length }, (_, k) => coords[k * 3 + 2] <= -0.15));
    assert.equal(zs.size, 1);
  }
  assert.equal(owner.size, nodes);
  // ghost points belong to neighbouring patches, never to the patch itself
  for (const info of res.patches) {
    const ghostNodes = Array.from(
      (await readNpy(`${out}/${info.name}/ghost_nodes.npy`)).data as BigInt64Array,
      Number,
    );
    for (const id of ghostNodes) {
      assert.notEqual(owner.get(id), info.id);
      assert.ok(info.neighbours.includes(owner.get(id)!));
    }
  }
  const ds = await loadPatchDataset(out, { targetCols: ["head"], inputWindow: 2, outputWindow: 2 });
  assert.equal(ds.patches.length, 6);
});

Deno.test("preparePatches() is deterministic for a seed and refuses to overwrite without force", async () => {
  await using tmp = await tempDir();
  const raw = `${tmp.dir}/all`;
  await writeRawFolder(raw, { nx: 12, ny: 3, nz: 4, steps: 3 });
  const a = await preparePatches({
    rawDir: raw,
    outDir: `${tmp.dir}/a`,
    nPatches: 8,
    sliceSplit: 4,
    seed: 7,
  });
  const b = await preparePatches({
    rawDir: raw,
    outDir: `${tmp.dir}/b`,
    nPatches: 8,
    sliceSplit: 4,
    seed: 7,
  });
  assert.deepEqual(a.patches, b.patches);
  for (const p of a.patches) {
    const x = await Deno.readFile(`${tmp.dir}/a/${p.name}/ghost_obs.npy`);
    const y = await Deno.readFile(`${tmp.dir}/b/${p.name}/ghost_obs.npy`);
    assert.deepEqual(x, y);
  }
  const before = await Deno.readTextFile(`${tmp.dir}/a/patches.json`);
  await assert.rejects(
    preparePatches({ rawDir: raw, outDir: `${tmp.dir}/a`, nPatches: 4, sliceSplit: 4 }),
    /exists and is not empty; pass --force/,
  );
  assert.equal(await Deno.readTextFile(`${tmp.dir}/a/patches.json`), before);
  const c = await preparePatches({
    rawDir: raw,
    outDir: `${tmp.dir}/a`,
    nPatches: 4,
    sliceSplit: 4,
    force: true,
  });
  assert.equal(c.patches.length, 4);
  assert.equal([...Deno.readDirSync(`${tmp.dir}/a`)].filter((e) => e.isDirectory).length, 4);
});

Deno.test("preparePatches() errors name the file, line and column, and write nothing", async () => {
  await using tmp = await tempDir();
  const raw = `${tmp.dir}/all`;
  await writeRawFolder(raw, { nx: 4, ny: 2, nz: 4, steps: 3 });
  const text = await Deno.readTextFile(`${raw}/0001.csv`);
  await Deno.writeTextFile(`${raw}/0001.csv`, text.replace("mass_concentration,", "salt,"));
  await assert.rejects(
    preparePatches({ rawDir: raw, outDir: `${tmp.dir}/out`, nPatches: 4 }),
    /0001\.csv: required column 'mass_concentration' is missing/,
  );
  const lines = text.split("\n");
  lines[3] = lines[3].split(",").slice(0, 7).join(",");
  await Deno.writeTextFile(`${raw}/0001.csv`, lines.join("\n"));
  await assert.rejects(
    preparePatches({ rawDir: raw, outDir: `${tmp.dir}/out`, nPatches: 4 }),
    /0001\.csv:4: ragged row/,
  );
  lines[3] = text.split("\n")[3].replace(/,([^,]*)$/, ",nan");
  await Deno.writeTextFile(`${raw}/0001.csv`, lines.join("\n"));
  await assert.rejects(
    preparePatches({ rawDir: raw, outDir: `${tmp.dir}/out`, nPatches: 4 }),
    /0001\.csv:4: pressure is NaN.*--allow-nan/,
  );
  await Deno.writeTextFile(`${raw}/0001.csv`, text);
  await assert.rejects(
    preparePatches({ rawDir: `${tmp.dir}/nothing`, outDir: `${tmp.dir}/out` }),
    /raw data folder not found/,
  );
  await assert.rejects(
    preparePatches({ rawDir: raw, outDir: `${tmp.dir}/out`, sliceSplit: 9, nPatches: 9 }),
    /--slice-split 9 is more than the 4 distinct slices/,
  );
  assert.equal([...Deno.readDirSync(tmp.dir)].map((e) => e.name).join(), "all");
});
