#!/usr/bin/env bash
# Builds what runs on a cluster into dist/:
#   bundle (default): dist/gino-train.js, dist/gino-ckpt.js and dist/gino-bench.js, single files with every
#                     dependency, plus the wasm backend's .wasm files, plotly.min.js, and the figure renderer
#                     (resvg.wasm) and its fonts (DejaVuSans*.ttf) beside them. Needs only the deno binary to run:
#                     deno run --allow-read --allow-write --allow-env --allow-sys --allow-ffi dist/gino-train.js ...
#   compile:          dist/gino-train and dist/gino-ckpt, standalone executables (deno compile; it downloads the
#                     Deno runtime for the target once, so run it where the internet is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-bundle}
perms=(--allow-read --allow-write --allow-env --allow-sys --allow-ffi)
mkdir -p dist
"${DENO:-deno}" install >/dev/null   # populate node_modules (tfjs, the wasm backend, plotly)
wasm_dir=$(dirname "$(ls node_modules/.deno/@tensorflow+tfjs-backend-wasm@*/node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm | head -n 1)")
plotly=$(ls node_modules/.deno/plotly.js-dist-min@*/node_modules/plotly.js-dist-min/plotly.min.js | head -n 1)
resvg=$(ls node_modules/.deno/@resvg+resvg-wasm@*/node_modules/@resvg/resvg-wasm/index_bg.wasm | head -n 1)
fonts=$(dirname "$(ls node_modules/.deno/dejavu-fonts-ttf@*/node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf | head -n 1)")
cp "$wasm_dir"/*.wasm "$plotly" "$fonts/DejaVuSans.ttf" "$fonts/DejaVuSans-Bold.ttf" dist/
cp "$resvg" dist/resvg.wasm
assets=("$wasm_dir" "$plotly" dist/resvg.wasm dist/DejaVuSans.ttf dist/DejaVuSans-Bold.ttf)
case "$mode" in
  bundle)
    "${DENO:-deno}" bundle --platform deno --quiet -o dist/gino-train.js train.ts
    "${DENO:-deno}" bundle --platform deno --quiet -o dist/gino-ckpt.js manage_checkpoints.ts
    "${DENO:-deno}" bundle --platform deno --quiet -o dist/gino-bench.js bench.ts
    echo "built dist/gino-train.js, dist/gino-ckpt.js, dist/gino-bench.js (+ .wasm files, plotly.min.js and fonts beside them)"
    ;;
  compile)
    includes=()
    for a in "${assets[@]}"; do includes+=(--include "$a"); done
    "${DENO:-deno}" compile "${perms[@]}" "${includes[@]}" -o dist/gino-train train.ts
    "${DENO:-deno}" compile "${perms[@]}" -o dist/gino-ckpt manage_checkpoints.ts
    echo "built dist/gino-train, dist/gino-ckpt (keep the .wasm, .ttf files and plotly.min.js beside them)"
    ;;
  *)
    echo "usage: hpc/build.sh [bundle|compile]" >&2
    exit 2
    ;;
esac
