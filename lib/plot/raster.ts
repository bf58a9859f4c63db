/**
 * SVG to PNG with resvg (WebAssembly, no browser, no system libraries) and the DejaVu Sans font shipped with the
 * toolkit (resvg reads no system fonts here, so every PNG looks the same on every machine). The renderer and the
 * fonts come from the npm packages; a bundled or compiled program finds them beside itself (`hpc/build.sh` puts
 * `resvg.wasm`, `DejaVuSans.ttf` and `DejaVuSans-Bold.ttf` there) or where `GINO_GW_ASSETS` points.
 *
 * @module
 */

import { findAsset } from "../io/assets.ts";
import { initWasm, Resvg } from "@resvg/resvg-wasm";

/** The files the renderer needs, by the name they have beside a bundled program. */
const ASSETS = {
  "resvg.wasm": "@resvg/resvg-wasm/index_bg.wasm",
  "DejaVuSans.ttf": "dejavu-fonts-ttf/ttf/DejaVuSans.ttf",
  "DejaVuSans-Bold.ttf": "dejavu-fonts-ttf/ttf/DejaVuSans-Bold.ttf",
} as const;

type AssetName = keyof typeof ASSETS;

/** Where an asset is: the npm package, `GINO_GW_ASSETS`, beside the executable or the main module. */
function assetPath(name: AssetName): string | undefined {
  return findAsset(ASSETS[name], name, () => {
    const dir = Deno.env.get("GINO_GW_ASSETS");
    return dir ? `${dir}/${name}` : undefined;
  });
}

let ready: Promise<Uint8Array[]> | undefined;

/** Loads the renderer and the fonts once; a clear error names what is missing and where it was looked for. */
function load(): Promise<Uint8Array[]> {
  ready ??= (async () => {
    const paths = Object.fromEntries(
      (Object.keys(ASSETS) as AssetName[]).map((k) => [k, assetPath(k)]),
    ) as Record<AssetName, string | undefined>;
    const missing = (Object.keys(paths) as AssetName[]).filter((k) => !paths[k]);
    if (missing.length) {
      throw new Error(
        `cannot render PNG figures: ${
          missing.join(", ")
        } not found (looked in node_modules, GINO_GW_ASSETS, and ` +
          `beside the program; run deno install, or keep the files hpc/build.sh puts in dist/ beside the program)`,
      );
    }
    await initWasm(await Deno.readFile(paths["resvg.wasm"]!));
    return [
      await Deno.readFile(paths["DejaVuSans.ttf"]!),
      await Deno.readFile(paths["DejaVuSans-Bold.ttf"]!),
    ];
  })();
  ready.catch(() => (ready = undefined));
  return ready;
}

/** Renders an SVG document to PNG bytes at `scale` times its size (2 for sharp figures on slides). */
export async function svgToPng(svg: string, scale = 1): Promise<Uint8Array> {
  const fonts = await load();
  const r = new Resvg(svg, {
    font: { fontBuffers: fonts, defaultFontFamily: "DejaVu Sans", sansSerifFamily: "DejaVu Sans" },
    fitTo: scale === 1 ? { mode: "original" } : { mode: "zoom", value: scale },
    background: "white",
    imageRendering: 1, // embedded pixel images (field maps) keep sharp cells
  });
  try {
    const img = r.render();
    try {
      return img.asPng();
    } finally {
      img.free();
    }
  } finally {
    r.free();
  }
}
