#!/bin/sh
# Builds the policy into build/policy.wasm (a component: wasm32-wasip2 output needs no wrapping).
set -eu
cd "$(dirname "$0")"
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --quiet --target wasm32-wasip2 --release
mkdir -p build
target_dir=${CARGO_TARGET_DIR:-target}
cp "$target_dir/wasm32-wasip2/release/{{crate}}.wasm" build/policy.wasm
echo "built build/policy.wasm ($(wc -c < build/policy.wasm) bytes)"
