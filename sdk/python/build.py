#!/usr/bin/env python3
"""Builds a Python policy into a Corbel component:

    python sdk/python/build.py PLUGIN_DIR OUT.wasm     # PLUGIN_DIR holds app.py
    python sdk/python/build.py --bindings              # only (re)generate sdk/python/generated/

componentize-py generates the bindings of the `policy` world from wit/ (``wit_world``), bundles
CPython, the SDK and the app, and writes the component. The same bindings are written to
sdk/python/generated/ for editors and type checkers. componentize-py is looked up beside this
interpreter first (the project's venv, target/toolchains/venv), then on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

SDK = Path(__file__).resolve().parent
ROOT = SDK.parent.parent
WIT = ROOT / "wit" / "v0.1.0"
WORLD = "policy"


def componentize_py() -> str:
    beside = Path(sys.executable).parent / "componentize-py"
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if not found:
        sys.exit(
            "error: componentize-py is not installed: run `cargo xtask plugins` (it installs it into "
            "target/toolchains/venv), or `pip install -r sdk/python/requirements.txt`"
        )
    return found


def bindings() -> Path:
    out = SDK / "generated"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([componentize_py(), "-d", str(WIT), "-w", WORLD, "bindings", str(out)], check=True)
    return out


def build(plugin_dir: Path, out: Path) -> int:
    if not (plugin_dir / "app.py").is_file():
        sys.exit(f"error: {plugin_dir} has no app.py: a Python policy's module must be app.py, defining `Admission`")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [componentize_py(), "-d", str(WIT), "-w", WORLD, "componentize", "app",
         "-p", str(plugin_dir), "-p", str(SDK), "-o", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out.stat().st_size


def main() -> None:
    args = sys.argv[1:]
    if args == ["--bindings"]:
        print(bindings())
        return
    if len(args) != 2:
        sys.exit("usage: python sdk/python/build.py PLUGIN_DIR OUT.wasm   (or --bindings)")
    started = time.monotonic()
    bindings()
    size = build(Path(args[0]), Path(args[1]))
    print(f"built {args[1]} ({size} bytes) in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
