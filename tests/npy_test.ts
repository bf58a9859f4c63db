import assert from "node:assert/strict";
import { encodeNpy, readNpy, writeNpy } from "../lib/io/npy.ts";
import { FIXTURES, tempDir } from "./_helpers.ts";

Deno.test("readNpy() reads NumPy-written files of format versions 1, 2 and 3", async () => {
  for (const v of [1, 2, 3]) {
    const a = await readNpy(`${FIXTURES}npy/v${v}.npy`);
    assert.equal(a.dtype, "<f4");
    assert.deepEqual(a.shape, [2, 3, 4]);
    assert.deepEqual(
      Array.from(a.data as Float32Array),
      Array.from({ length: 24 }, (_, i) => Math.fround(i / 7)),
    );
  }
  const i8 = await readNpy(`${FIXTURES}npy/i8.npy`);
  assert.deepEqual(Array.from(i8.data as BigInt64Array, Number), [-2, -1, 0, 1, 2]);
});

Deno.test("writeNpy() round-trips float32, float64, int32 and int64 arrays", async () => {
  await using tmp = await tempDir();
  const cases = [
    new Float32Array([1.5, -2, 3e-8, 4, 5, 6]),
    new Float64Array([Math.PI, -0, 1e300, 4, 5, 6]),
    new Int32Array([1, -2, 3, 2147483647, 5, 6]),
    new BigInt64Array([1n, -2n, 3n, 9007199254740993n, 5n, 6n]),
  ];
  for (const data of cases) {
    await writeNpy(`${tmp.dir}/x.npy`, [2, 3], data);
    const back = await readNpy(`${tmp.dir}/x.npy`);
    assert.deepEqual(back.shape, [2, 3]);
    assert.deepEqual(back.data, data);
  }
  await writeNpy(`${tmp.dir}/e.npy`, [0, 3], new Float64Array(0));
  assert.deepEqual((await readNpy(`${tmp.dir}/e.npy`)).shape, [0, 3]);
  // header is padded so the data start on a 64-byte boundary, as NumPy does
  assert.equal((encodeNpy([7], new Float32Array(7)).length - 28) % 64, 0);
});

Deno.test("readNpy() refuses Fortran order, big-endian and unsupported dtypes with a message saying what to do", async () => {
  await assert.rejects(
    readNpy(`${FIXTURES}npy/fortran.npy`),
    /fortran\.npy: Fortran-order arrays are not supported.*C order/,
  );
  await assert.rejects(
    readNpy(`${FIXTURES}npy/bigendian.npy`),
    /bigendian\.npy: dtype '>f8' is not supported/,
  );
  await assert.rejects(readNpy(`${FIXTURES}npy/uint8.npy`), /uint8\.npy: dtype '\|u1' is not supported/);
});

Deno.test("readNpy() reports truncated and non-npy files", async () => {
  await using tmp = await tempDir();
  const bytes = encodeNpy([10, 3], new Float32Array(30));
  await Deno.writeFile(`${tmp.dir}/t.npy`, bytes.subarray(0, bytes.length - 5));
  await assert.rejects(readNpy(`${tmp.dir}/t.npy`), /t\.npy: file is truncated/);
  await Deno.writeTextFile(`${tmp.dir}/n.npy`, "hello world, not numpy");
  await assert.rejects(readNpy(`${tmp.dir}/n.npy`), /n\.npy: not a \.npy file/);
  await assert.rejects(readNpy(`${tmp.dir}/missing.npy`), /missing\.npy: file not found/);
});
