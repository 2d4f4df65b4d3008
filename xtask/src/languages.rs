//! Plugins written in JavaScript, Python and C: their toolchains, installed once into the project
//! (`sdk/js/node_modules`, `target/toolchains/`) from the registries the machine reaches, and
//! their builds, redone only when a source is newer than the component.
//!
//! A folder under `plugins/` without a Cargo.toml is a plugin in another language, told by its
//! files: `app.py` Python, `index.js` JavaScript, `go.mod` Go, `*.c` C. Its component is written beside the
//! Rust ones, `target/wasm32-wasip2/plugin/<name with _ for ->.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::{apt_install, root, step};

/// wit-bindgen's command line, the same version as the Rust guest bindings (Cargo.toml).
const WIT_BINDGEN_VERSION: &str = "0.63.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Language {
    JavaScript,
    Python,
    C,
    Go,
}

impl Language {
    fn of(dir: &Path) -> Option<Language> {
        if dir.join("Cargo.toml").exists() {
            return None;
        }
        if dir.join("app.py").exists() {
            return Some(Language::Python);
        }
        if dir.join("index.js").exists() || dir.join("package.json").exists() {
            return Some(Language::JavaScript);
        }
        if dir.join("go.mod").exists() {
            return Some(Language::Go);
        }
        let has_c = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "c"));
        has_c.then_some(Language::C)
    }

    fn sdk(self) -> &'static str {
        match self {
            Language::JavaScript => "sdk/js",
            Language::Python => "sdk/python",
            Language::C => "sdk/c",
            Language::Go => "sdk/go",
        }
    }
}

fn toolchains() -> PathBuf {
    root().join("target/toolchains")
}

/// The plugins in other languages under `plugins/`, sorted by folder name.
pub fn plugins() -> Result<Vec<(PathBuf, Language)>, String> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(root().join("plugins"))
        .map_err(|e| format!("failed to list plugins/: {e}"))?;
    for entry in entries.flatten() {
        if let Some(language) = Language::of(&entry.path()) {
            found.push((entry.path(), language));
        }
    }
    found.sort();
    Ok(found)
}

/// Builds every plugin in another language whose component is older than its sources.
pub fn build_all() -> Result<(), String> {
    let plugins = plugins()?;
    for language in [
        Language::JavaScript,
        Language::Python,
        Language::C,
        Language::Go,
    ] {
        if plugins.iter().any(|(_, l)| *l == language) {
            ensure_toolchain(language)?;
        }
    }
    let out_dir = root().join("target/wasm32-wasip2/plugin");
    for (dir, language) in &plugins {
        let name = dir.file_name().unwrap().to_string_lossy().replace('-', "_");
        let out = out_dir.join(format!("{name}.wasm"));
        build(dir, *language, &out)?;
    }
    Ok(())
}

/// Builds one plugin in another language into `out`, unless `out` is newer than every input.
pub fn build(dir: &Path, language: Language, out: &Path) -> Result<(), String> {
    let inputs = [
        dir.to_path_buf(),
        root().join(language.sdk()),
        root().join("wit"),
    ];
    if newest(&inputs).is_some_and(|newest| modified(out).is_some_and(|built| built >= newest)) {
        return Ok(());
    }
    let what = format!(
        "building {language:?} plugin {} ({})",
        dir.strip_prefix(root()).unwrap_or(dir).display(),
        out.strip_prefix(root()).unwrap_or(out).display()
    );
    let mut cmd = match language {
        Language::JavaScript => {
            let mut cmd = Command::new("node");
            cmd.arg(root().join("sdk/js/build.mjs"));
            cmd
        }
        Language::Python => {
            let mut cmd = Command::new(toolchains().join("venv/bin/python"));
            cmd.arg(root().join("sdk/python/build.py"));
            cmd
        }
        Language::C => Command::new(root().join("sdk/c/build.sh")),
        Language::Go => Command::new(root().join("sdk/go/build.sh")),
    };
    cmd.current_dir(root()).arg(dir).arg(out);
    step(&what, &mut cmd)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time under these paths, skipping installed and generated folders.
fn newest(paths: &[PathBuf]) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if matches!(name.as_ref(), "node_modules" | "generated" | "__pycache__") {
            continue;
        }
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).ok()?.flatten().map(|e| e.path()));
        } else if let Some(time) = modified(&path) {
            newest = newest.max(Some(time));
        }
    }
    newest
}

fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs what a language's builds need, when it is not installed yet.
pub fn ensure_toolchain(language: Language) -> Result<(), String> {
    match language {
        Language::JavaScript => npm_packages(),
        Language::Python => python_packages(),
        Language::C => {
            clang()?;
            python_packages()?;
            wit_bindgen()?;
            adapter()
        }
        Language::Go => {
            python_packages()?;
            // Wizer, which pre-initialises the Go runtime at build time, comes with the
            // JavaScript toolchain (sdk/go/build.sh says why).
            npm_packages()?;
            adapter()
        }
    }
}

/// componentize-js, jco, rolldown and Wizer, as pinned by sdk/js/package.json and package-lock.json.
/// `npm install --no-save` rather than `npm ci`: the lock file npm writes here leaves out some
/// optional per-platform packages, and `npm ci` then refuses it as out of sync; `--no-save` keeps
/// the lock file untouched.
fn npm_packages() -> Result<(), String> {
    let dir = root().join("sdk/js");
    let stamp = dir.join("node_modules/.corbel-installed");
    let wanted = ["package.json", "package-lock.json"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
        .collect::<String>();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(());
    }
    if !works("npm", &["--version"]) {
        return Err("npm is needed to build the JavaScript plugins (sdk/js); install Node.js 20 or later (Debian: apt-get install nodejs npm)".into());
    }
    step(
        "installing the JavaScript toolchain into sdk/js/node_modules (npm install)",
        Command::new("npm").current_dir(&dir).args([
            "install",
            "--no-save",
            "--no-audit",
            "--no-fund",
        ]),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("failed to write {}: {e}", stamp.display()))
}

/// A virtual environment under target/toolchains with componentize-py, wasm-tools and Go, as
/// pinned by the SDKs' requirements.txt files.
fn python_packages() -> Result<(), String> {
    let venv = toolchains().join("venv");
    let bin = venv.join("bin");
    let wanted = [
        "sdk/python/requirements.txt",
        "sdk/c/requirements.txt",
        "sdk/go/requirements.txt",
    ];
    let stamp = venv.join("installed");
    let current = wanted
        .iter()
        .map(|f| std::fs::read_to_string(root().join(f)).unwrap_or_default())
        .collect::<String>();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == current) {
        return Ok(());
    }
    if !bin.join("python").exists() {
        if !works("python3", &["--version"]) {
            return Err("python3 is needed to build the Python and C plugins; install Python 3.10 or later (Debian: apt-get install python3 python3-venv)".into());
        }
        step(
            "creating the Python environment target/toolchains/venv",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        )?;
    }
    let mut pip = Command::new(bin.join("pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"]);
    for file in wanted {
        pip.arg("-r").arg(root().join(file));
    }
    step(
        "installing componentize-py, wasm-tools and Go into target/toolchains/venv (pip)",
        &mut pip,
    )?;
    std::fs::write(&stamp, current).map_err(|e| format!("failed to write {}: {e}", stamp.display()))
}

/// Debian's clang, lld and wasi-libc (the wasm32-wasi sysroot and its compiler runtime).
fn clang() -> Result<(), String> {
    let sysroot = Path::new("/usr/include/wasm32-wasi/stdlib.h").exists();
    if works("clang", &["--version"]) && works("wasm-ld", &["--version"]) && sysroot {
        return Ok(());
    }
    apt_install(
        "the C plugins",
        &["clang", "lld", "wasi-libc", "libclang-rt-dev-wasm32"],
    )
    .map_err(|e| format!("{e}: the C plugins need Debian's clang, lld, wasi-libc and libclang-rt-dev-wasm32 (install them, then run again)"))
}

/// `wit-bindgen c`, built once into target/toolchains/cargo (about 200 s on two cores).
fn wit_bindgen() -> Result<(), String> {
    let bin = toolchains().join("cargo/bin/wit-bindgen");
    let version = Command::new(&bin).arg("--version").output();
    if version.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(WIT_BINDGEN_VERSION)) {
        return Ok(());
    }
    step(
        &format!(
            "installing wit-bindgen-cli {WIT_BINDGEN_VERSION} into target/toolchains/cargo (once; ~200 s)"
        ),
        crate::cargo()
            .args([
                "install",
                "wit-bindgen-cli",
                "--locked",
                "--version",
                WIT_BINDGEN_VERSION,
                "--root",
            ])
            .arg(toolchains().join("cargo")),
    )
}

/// The preview1 adapter shipped with the host's wasmtime: C builds for wasm32-wasi (preview1)
/// and `wasm-tools component new --adapt` turns its WASI imports into the 0.2 ones the host links.
fn adapter() -> Result<(), String> {
    let path = toolchains().join("wasi_snapshot_preview1.reactor.wasm");
    let bytes = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    if std::fs::read(&path).is_ok_and(|b| b == bytes) {
        return Ok(());
    }
    std::fs::create_dir_all(toolchains())
        .map_err(|e| format!("failed to create target/toolchains: {e}"))?;
    std::fs::write(&path, bytes).map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// The JavaScript and Python SDKs' own tests, on Node and CPython (their built components are
/// tested end to end by tests/languages.rs).
pub fn sdk_tests() -> Result<(), String> {
    step(
        "JavaScript SDK tests (node --test sdk/js/test/)",
        Command::new("node")
            .current_dir(root().join("sdk/js"))
            .args(["--test", "test/"]),
    )?;
    step(
        "Python SDK tests (python -m unittest, sdk/python/tests)",
        Command::new(toolchains().join("venv/bin/python"))
            .current_dir(root())
            .args(["-m", "unittest", "discover", "-s", "sdk/python/tests"]),
    )
}
