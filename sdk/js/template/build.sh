#!/bin/sh
# Builds the policy into build/policy.wasm with Corbel's JavaScript SDK (componentize-js).
set -eu
cd "$(dirname "$0")"
sdk="{{sdk}}/js"
[ -d "$sdk/node_modules" ] || npm install --no-save --prefix "$sdk" --no-audit --no-fund
node "$sdk/build.mjs" . build/policy.wasm
