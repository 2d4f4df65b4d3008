#!/bin/sh
# Builds a C policy into a Corbel component:
#   sdk/c/build.sh PLUGIN_DIR OUT.wasm
# 1. `wit-bindgen c` generates the bindings of the `policy` world from wit/ (into target/c-build/);
# 2. Debian's clang compiles them, the SDK and PLUGIN_DIR/*.c for wasm32-wasi (a preview1 reactor);
# 3. `wasm-tools component new --adapt` wraps the module into a component with the preview1 adapter.
# Tools come from target/toolchains (`cargo xtask plugins` installs them), else from PATH.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tools="$root/target/toolchains"
[ $# -eq 2 ] || { echo "usage: sdk/c/build.sh PLUGIN_DIR OUT.wasm" >&2; exit 2; }
plugin=$(cd "$1" && pwd)
out=$2
PATH="$tools/cargo/bin:$tools/venv/bin:$PATH"
for tool in clang wit-bindgen wasm-tools; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed: run \`cargo xtask plugins\` (it installs clang, wit-bindgen and wasm-tools)" >&2; exit 1; }
done
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
[ -f "$adapter" ] || { echo "error: $adapter is missing: run \`cargo xtask plugins\` (it writes the preview1 adapter of wasmtime 48)" >&2; exit 1; }

work="$root/target/c-build/$(basename "$plugin")"
mkdir -p "$work"
wit-bindgen c "$root/wit/v0.1.0" --world policy --out-dir "$work" >/dev/null 2>&1 || wit-bindgen c "$root/wit/v0.1.0" --world policy --out-dir "$work"
# -mexec-model=reactor: a library the host calls into, not a program with main().
clang --target=wasm32-wasi -O2 -Wall -Wextra -Werror -mexec-model=reactor \
  -I "$here/include" -I "$work" \
  -o "$work/module.wasm" \
  "$work/policy.c" "$work/policy_component_type.o" "$here/src/corbel.c" "$here/src/glue.c" "$plugin"/*.c
mkdir -p "$(dirname "$out")"
wasm-tools component new "$work/module.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
echo "built $out ($(wc -c < "$out") bytes)"
