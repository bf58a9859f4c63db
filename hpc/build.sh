#!/usr/bin/env bash
# Builds what runs on a cluster into dist/:
#   bundle (default): dist/gino-train.js and dist/gino-ckpt.js, single files with every dependency, plus the wasm
#                     backend's .wasm files and plotly.min.js beside them. Needs only the deno binary to run:
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
cp "$wasm_dir"/*.wasm "$plotly" dist/
case "$mode" in
  bundle)
    "${DENO:-deno}" bundle --platform deno --quiet -o dist/gino-train.js train.ts
    "${DENO:-deno}" bundle --platform deno --quiet -o dist/gino-ckpt.js manage_checkpoints.ts
    echo "built dist/gino-train.js, dist/gino-ckpt.js (+ .wasm files and plotly.min.js beside them)"
    ;;
  compile)
    "${DENO:-deno}" compile "${perms[@]}" --include "$wasm_dir" --include "$plotly" -o dist/gino-train train.ts
    "${DENO:-deno}" compile "${perms[@]}" -o dist/gino-ckpt manage_checkpoints.ts
    echo "built dist/gino-train, dist/gino-ckpt (keep the .wasm files and plotly.min.js beside them)"
    ;;
  *)
    echo "usage: hpc/build.sh [bundle|compile]" >&2
    exit 2
    ;;
esac
