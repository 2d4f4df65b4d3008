#!/bin/sh
# Builds the policy into build/policy.wasm with Corbel's Python SDK (componentize-py).
set -eu
cd "$(dirname "$0")"
sdk="{{sdk}}/python"
venv="{{sdk}}/../target/toolchains/venv"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$sdk/requirements.txt"
fi
"$venv/bin/python" "$sdk/build.py" . build/policy.wasm
