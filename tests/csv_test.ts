import assert from "node:assert/strict";
import { CsvError, readCsvHeader, readNumericCsv, streamNumericCsv } from "../lib/io/csv.ts";
import { tempDir } from "./_helpers.ts";

const HEADER = "node,slice,X,Y,Z,mass_concentration,head,pressure";

Deno.test("readNumericCsv() reads selected columns by header name, exactly as Number() parses them", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/a.csv`;
  const rows: number[][] = [];
  let s = 7;
  const r = () => (s = (s * 48271) % 2147483647) / 2147483647;
  const lines = [HEADER];
  for (let i = 0; i < 3000; i++) {
    const row = [i + 1, 1 + (i % 5), r() * 2000, -r() * 10, r() * 1e-9, r() * 35, 1 + r() * 1e-3, r() * 1e5];
    rows.push(row);
    const cells = row.map((
      v,
      k,
    ) => (k === 2 ? v.toFixed(6) : k === 5 ? v.toExponential(12) : k === 7 ? v.toPrecision(17) : String(v)));
    lines.push(cells.join(","));
  }
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  const csv = await readNumericCsv(path, ["pressure", "X", "mass_concentration", "Z", "node"]);
  assert.equal(csv.rows, 3000);
  assert.deepEqual(csv.header, HEADER.split(","));
  const text = lines.slice(1).map((l) => l.split(","));
  for (let i = 0; i < 3000; i++) {
    assert.equal(csv.columns.X[i], Number(text[i][2]));
    assert.equal(csv.columns.mass_concentration[i], Number(text[i][5]));
    assert.equal(csv.columns.pressure[i], Number(text[i][7]));
    assert.equal(csv.columns.Z[i], Number(text[i][4]));
    assert.equal(csv.columns.node[i], i + 1);
  }
});

Deno.test("streamNumericCsv() handles rows split across read blocks, CRLF, quoted headers and a missing last newline", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/b.csv`;
  const lines = ['"node", "X" ,head'];
  for (let i = 0; i < 500; i++) lines.push(`${i},${i * 0.5},-${i}e-3`);
  await Deno.writeTextFile(path, "\ufeff" + lines.join("\r\n"));
  const seen: number[] = [];
  for await (
    const chunk of streamNumericCsv(path, { columns: ["head", "X"], blockBytes: 64, chunkRows: 37 })
  ) {
    for (let i = 0; i < chunk.rows; i++) {
      assert.equal(chunk.columns[1][i], (chunk.firstRow + i) * 0.5);
      seen.push(chunk.columns[0][i]);
    }
  }
  assert.equal(seen.length, 500);
  assert.deepEqual(seen, Array.from({ length: 500 }, (_, i) => Number(`-${i}e-3`)));
  assert.deepEqual(await readCsvHeader(path), ["node", "X", "head"]);
});

Deno.test("readNumericCsv() names the file and the column when a required column is missing", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/c.csv`;
  await Deno.writeTextFile(path, "node,X,Y\n1,2,3\n");
  await assert.rejects(readNumericCsv(path, ["X", "head"]), (e: Error) => {
    assert.ok(e instanceof CsvError);
    assert.match(e.message, /c\.csv/);
    assert.match(e.message, /'head' is missing/);
    return true;
  });
});

Deno.test("readNumericCsv() rejects a ragged row, naming the line", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/d.csv`;
  await Deno.writeTextFile(path, "a,b,c\n1,2,3\n4,5\n6,7,8\n");
  await assert.rejects(readNumericCsv(path, ["a"]), /d\.csv:3: ragged row: 2 cells where the header has 3/);
  await Deno.writeTextFile(path, "a,b,c\n1,2,3\n4,5,6,7\n");
  await assert.rejects(readNumericCsv(path, ["c"]), /d\.csv:3: ragged row: 4 cells/);
});

Deno.test("readNumericCsv() rejects non-numeric and empty cells, naming line and column", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/e.csv`;
  await Deno.writeTextFile(path, "a,b\n1,2\n3,x7\n");
  await assert.rejects(readNumericCsv(path, ["a", "b"]), /e\.csv:3: non-numeric value 'x7' in column 'b'/);
  await Deno.writeTextFile(path, "a,b\n1,2\n,4\n");
  await assert.rejects(readNumericCsv(path, ["a"]), /e\.csv:3: empty value in column 'a'/);
  // a bad cell in a column that was not asked for is not read
  await Deno.writeTextFile(path, "a,b\n1,zz\n");
  assert.equal((await readNumericCsv(path, ["a"])).columns.a[0], 1);
});

Deno.test("readNumericCsv() reads nan and inf literals as IEEE values, and a missing file is a clear error", async () => {
  await using tmp = await tempDir();
  const path = `${tmp.dir}/f.csv`;
  await Deno.writeTextFile(path, "a\nnan\nNaN\n-inf\n1e400\n");
  const a = (await readNumericCsv(path, ["a"])).columns.a;
  assert.ok(Number.isNaN(a[0]) && Number.isNaN(a[1]));
  assert.equal(a[2], -Infinity);
  assert.equal(a[3], Infinity);
  await assert.rejects(readNumericCsv(`${tmp.dir}/nope.csv`, ["a"]), /CSV file not found: .*nope\.csv/);
});
