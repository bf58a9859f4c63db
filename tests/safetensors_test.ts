import assert from "node:assert/strict";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
} from "../lib/io/safetensors.ts";
import { tempDir } from "./_helpers.ts";

Deno.test("safetensors round-trip keeps names, order, dtypes, shapes, values and metadata", async () => {
  await using tmp = await tempDir();
  const tensors = {
    "b.weight": { shape: [2, 3], data: new Float32Array([1, 2, 3, 4, 5, 6.5]) },
    "a.bias": { shape: [3], data: new Float64Array([Math.PI, -1, 1e-300]) },
    "step": { shape: [], data: new BigInt64Array([123n]) },
    "ids": { shape: [2], data: new Int32Array([-7, 7]) },
  };
  await writeSafetensors(`${tmp.dir}/t.safetensors`, tensors, { format: "pt", note: "ünïcode" });
  const back = await readSafetensors(`${tmp.dir}/t.safetensors`);
  assert.deepEqual(Object.keys(back.tensors), Object.keys(tensors));
  assert.equal(back.tensors["b.weight"].dtype, "F32");
  assert.equal(back.tensors["a.bias"].dtype, "F64");
  assert.equal(back.tensors["step"].dtype, "I64");
  for (const [k, t] of Object.entries(tensors)) {
    assert.deepEqual(back.tensors[k].shape, t.shape);
    assert.deepEqual(back.tensors[k].data, t.data);
  }
  assert.deepEqual(back.metadata, { format: "pt", note: "ünïcode" });
  const bytes = await Deno.readFile(`${tmp.dir}/t.safetensors`);
  const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + headerLen) % 8, 0, "data section is 8-byte aligned");
});

Deno.test("decodeSafetensors() refuses truncated, malformed and inconsistent files with a message naming the file", () => {
  const good = encodeSafetensors({ w: { shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
  assert.throws(
    () => decodeSafetensors(good.subarray(0, good.length - 3), "x.safetensors"),
    /x\.safetensors: truncated: tensor 'w' ends at byte 16/,
  );
  assert.throws(() => decodeSafetensors(good.subarray(0, 5), "x.safetensors"), /x\.safetensors: truncated/);
  const badLen = good.slice();
  new DataView(badLen.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => decodeSafetensors(badLen, "x.safetensors"), /bad header length/);
  const badJson = good.slice();
  badJson[9] = 0x7b; // '{{'...
  assert.throws(() => decodeSafetensors(badJson, "x.safetensors"), /header is not valid JSON/);
  const enc = new TextEncoder();
  const make = (header: unknown, data: number) => {
    let h = JSON.stringify(header);
    h += " ".repeat((8 - (h.length % 8)) % 8);
    const out = new Uint8Array(8 + h.length + data);
    new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
    out.set(enc.encode(h), 8);
    return out;
  };
  assert.throws(
    () => decodeSafetensors(make({ w: { dtype: "F32", shape: [3], data_offsets: [0, 16] } }, 16)),
    /needs 12 bytes but its offsets span 16/,
  );
  assert.throws(
    () =>
      decodeSafetensors(
        make({
          a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
          b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        }, 12),
      ),
    /'a' and 'b' overlap/,
  );
  assert.throws(
    () => decodeSafetensors(make({ w: { dtype: "Q4", shape: [1], data_offsets: [0, 1] } }, 1)),
    /unsupported dtype Q4/,
  );
});
