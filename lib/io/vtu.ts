/**
 * VTK XML files for ParaView: an UnstructuredGrid (`.vtu`) with points, cells and data arrays (binary, base64
 * inline, UInt64 size headers), and a collection (`.pvd`) that lists one `.vtu` per time with its time, so ParaView
 * opens a series as one time-dependent data set. Cells are given in VTK's own order; {@linkcode prismCells} builds
 * the cells of a layered grid (wedges, hexahedra, polyhedra) from cell outlines and their tops and bottoms.
 *
 * @module
 */

import { writeTextFileAtomic } from "./atomic.ts";

/** VTK cell types used here. */
export const VTK = { VERTEX: 1, HEXAHEDRON: 12, WEDGE: 13, POLYHEDRON: 42 } as const;

/** Cells of an unstructured grid, as VTK's XML format stores them. */
export interface VtkCells {
  /** Point indices of all cells, one after another. */
  connectivity: Int32Array;
  /** End of each cell's points in `connectivity`. */
  offsets: Int32Array;
  /** VTK cell type of each cell. */
  types: Uint8Array;
  /** Polyhedra: per cell [faces, (points, ids...) per face] (nothing for other cells). */
  faces?: Int32Array;
  /** Each cell's end in `faces` (-1 for a cell that is not a polyhedron). */
  faceoffsets?: Int32Array;
}

/** A data array of a `.vtu`: one value per point or per cell. */
export interface VtkArray {
  /** Its name in ParaView. */
  name: string;
  /** One value per point or cell. */
  values: Float32Array | Float64Array;
}

/** Encodes `bytes` as VTK's inline binary: base64 of a UInt64 byte count followed by the bytes. */
function binary(view: ArrayBufferView): string {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  const all = new Uint8Array(8 + bytes.length);
  new DataView(all.buffer).setBigUint64(0, BigInt(bytes.length), true);
  all.set(bytes, 8);
  let s = "";
  for (let i = 0; i < all.length; i += 0x8000) s += String.fromCharCode(...all.subarray(i, i + 0x8000));
  return btoa(s);
}

const typeName = (a: ArrayBufferView) =>
  a instanceof Float64Array
    ? "Float64"
    : a instanceof Float32Array
    ? "Float32"
    : a instanceof Int32Array
    ? "Int32"
    : a instanceof Uint8Array
    ? "UInt8"
    : "Int64";

const dataArray = (name: string, a: ArrayBufferView, components = 1) =>
  `<DataArray type="${typeName(a)}" Name="${name}"${
    components > 1 ? ` NumberOfComponents="${components}"` : ""
  } format="binary">${binary(a)}</DataArray>`;

/** A string data array of the data set as a whole (VTK's field data): its strings, each ended by a NUL byte. */
const stringArray = (name: string, value: string) =>
  `<DataArray type="String" Name="${name}" NumberOfTuples="1" format="binary">${
    binary(new TextEncoder().encode(value + "\0"))
  }</DataArray>`;

/**
 * The text of a `.vtu` file: `points` flat [n, 3], `cells`, arrays on the points or on the cells, and strings of
 * the data set as a whole (`field`: VTK's field data, e.g. the coordinate reference system as `CRS`).
 */
export function encodeVtu(
  points: Float64Array,
  cells: VtkCells,
  data: { points?: VtkArray[]; cells?: VtkArray[]; field?: Record<string, string> },
): string {
  const np = points.length / 3, nc = cells.types.length;
  const arrays = (list: VtkArray[] | undefined, n: number, what: string) =>
    (list ?? []).map((a) => {
      if (a.values.length !== n) throw new Error(`${a.name}: ${a.values.length} values for ${n} ${what}`);
      return dataArray(a.name, a.values);
    }).join("\n");
  const faces = cells.faces && cells.faceoffsets
    ? `\n${dataArray("faces", cells.faces)}\n${dataArray("faceoffsets", cells.faceoffsets)}`
    : "";
  return `<?xml version="1.0"?>
<VTKFile type="UnstructuredGrid" version="1.0" byte_order="LittleEndian" header_type="UInt64">
<UnstructuredGrid>${
    data.field && Object.keys(data.field).length
      ? `\n<FieldData>\n${
        Object.entries(data.field).map(([k, v]) => stringArray(k, v)).join("\n")
      }\n</FieldData>`
      : ""
  }
<Piece NumberOfPoints="${np}" NumberOfCells="${nc}">
<PointData>
${arrays(data.points, np, "points")}
</PointData>
<CellData>
${arrays(data.cells, nc, "cells")}
</CellData>
<Points>
${dataArray("Points", points, 3)}
</Points>
<Cells>
${dataArray("connectivity", cells.connectivity)}
${dataArray("offsets", cells.offsets)}
${dataArray("types", cells.types)}${faces}
</Cells>
</Piece>
</UnstructuredGrid>
</VTKFile>
`;
}

/**
 * Writes a `.pvd` collection listing `entries` (file paths relative to the `.pvd`) with their times; `crs`, where
 * given, in a comment (the collection format has no place for it; each `.vtu` holds it as field data).
 */
export async function writePvd(
  path: string,
  entries: { time: number; file: string }[],
  crs?: string,
): Promise<void> {
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  const lines = entries.map((e) =>
    `    <DataSet timestep="${e.time}" group="" part="0" file="${esc(e.file)}"/>`
  );
  await writeTextFileAtomic(
    path,
    `<?xml version="1.0"?>
<VTKFile type="Collection" version="0.1" byte_order="LittleEndian">${
      crs ? `\n  <!-- coordinate reference system: ${crs.replace(/--/g, "- -")} -->` : ""
    }
  <Collection>
${lines.join("\n")}
  </Collection>
</VTKFile>
`,
  );
}

/**
 * Cells of a layered grid: cell i is the prism over a plan outline (vertex coordinates `vx`, `vy`, listed
 * clockwise seen from above, as MODFLOW 6 lists them) between `bot[i]` and `top[i]`: a wedge for a triangle, a
 * hexahedron for a quadrilateral, a polyhedron otherwise (faces oriented outwards). Each cell gets its own points.
 */
export function prismCells(
  outlines: { vx: ArrayLike<number>; vy: ArrayLike<number> }[],
  top: ArrayLike<number>,
  bot: ArrayLike<number>,
): { points: Float64Array; cells: VtkCells } {
  const pts: number[] = [], conn: number[] = [], offsets: number[] = [], types: number[] = [];
  const faces: number[] = [], faceoffsets: number[] = [];
  let anyPoly = false;
  outlines.forEach((o, i) => {
    const nv = o.vx.length, base = pts.length / 3;
    for (const z of [bot[i], top[i]]) for (let v = 0; v < nv; v++) pts.push(o.vx[v], o.vy[v], z);
    const b = (v: number) => base + v, t = (v: number) => base + nv + v;
    if (nv === 3) {
      // VTK wedge: (0, 1, 2) with its normal pointing away from (3, 4, 5): clockwise from above at the bottom
      conn.push(b(0), b(1), b(2), t(0), t(1), t(2));
      types.push(VTK.WEDGE);
    } else if (nv === 4) {
      // VTK hexahedron: (0, 1, 2, 3) with its normal pointing towards (4, 5, 6, 7): counter-clockwise from above
      conn.push(b(3), b(2), b(1), b(0), t(3), t(2), t(1), t(0));
      types.push(VTK.HEXAHEDRON);
    } else {
      for (let v = 0; v < nv; v++) conn.push(b(v));
      for (let v = 0; v < nv; v++) conn.push(t(v));
      types.push(VTK.POLYHEDRON);
      anyPoly = true;
      // outward faces: bottom clockwise from above, top counter-clockwise, sides a_bottom, a_top, b_top, b_bottom
      faces.push(nv + 2, nv, ...Array.from({ length: nv }, (_, v) => b(v)));
      faces.push(nv, ...Array.from({ length: nv }, (_, v) => t(nv - 1 - v)));
      for (let v = 0; v < nv; v++) {
        const w = (v + 1) % nv;
        faces.push(4, b(v), t(v), t(w), b(w));
      }
    }
    offsets.push(conn.length);
    faceoffsets.push(nv >= 5 ? faces.length : -1);
  });
  return {
    points: Float64Array.from(pts),
    cells: {
      connectivity: Int32Array.from(conn),
      offsets: Int32Array.from(offsets),
      types: Uint8Array.from(types),
      ...(anyPoly ? { faces: Int32Array.from(faces), faceoffsets: Int32Array.from(faceoffsets) } : {}),
    },
  };
}

/** Vertex cells, one per point (data given only at points). */
export function vertexCells(n: number): VtkCells {
  return {
    connectivity: Int32Array.from({ length: n }, (_, i) => i),
    offsets: Int32Array.from({ length: n }, (_, i) => i + 1),
    types: new Uint8Array(n).fill(VTK.VERTEX),
  };
}
