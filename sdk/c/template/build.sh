#!/bin/sh
# Builds the policy into build/policy.wasm with Corbel's C SDK (clang, wit-bindgen c, wasm-tools).
set -eu
cd "$(dirname "$0")"
"{{sdk}}/c/build.sh" . build/policy.wasm
