#!/bin/sh
# Builds the policy into build/policy.wasm with Corbel's Go SDK (Go wasip1, wasm-tools).
set -eu
cd "$(dirname "$0")"
"{{sdk}}/go/build.sh" . build/policy.wasm
