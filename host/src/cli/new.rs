//! `corbel new --lang LANG NAME`: scaffolds a policy that builds (`./build.sh`) and passes its own
//! cases (`corbel test NAME/tests`) out of the box.
//!
//! The templates live in `sdk/<lang>/template/` (and the cases every language shares in
//! `sdk/template/`) and are compiled into the binary, so an installed `corbel` scaffolds anywhere.
//! The scaffold builds against the SDK folder of a Corbel checkout (`--sdk`, `$CORBEL_SDK`, or found
//! beside the binary or above the working directory): the SDKs are not published to registries.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    Rust,
    Js,
    Python,
    C,
    Go,
}

/// (path in the scaffold, template text); `{{name}}`, `{{crate}}`, `{{sdk}}`, `{{language}}` and
/// `{{sdk_folder}}` are replaced.
type Files = &'static [(&'static str, &'static str)];

macro_rules! template {
    ($($path:literal => $file:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../sdk/", $file)))),*]
    };
}

const COMMON: Files = template! {
    "README.md" => "template/README.md",
    "tests/corbel-test.yaml" => "template/tests/corbel-test.yaml",
    "tests/01-admits-an-object-with-the-label.yaml" => "template/tests/01-admits-an-object-with-the-label.yaml",
    "tests/02-denies-an-object-without-the-label.yaml" => "template/tests/02-denies-an-object-without-the-label.yaml",
    "tests/03-refuses-settings-without-a-label.yaml" => "template/tests/03-refuses-settings-without-a-label.yaml",
};

const RUST: Files = template! {
    "Cargo.toml" => "rust/template/Cargo.toml",
    "src/lib.rs" => "rust/template/src/lib.rs",
    "build.sh" => "rust/template/build.sh",
};

const JS: Files = template! {
    "index.js" => "js/template/index.js",
    "build.sh" => "js/template/build.sh",
};

const PYTHON: Files = template! {
    "app.py" => "python/template/app.py",
    "build.sh" => "python/template/build.sh",
};

const C: Files = template! {
    "policy.c" => "c/template/policy.c",
    "build.sh" => "c/template/build.sh",
};

const GO: Files = template! {
    "go.mod" => "go/template/go.mod",
    "main.go" => "go/template/main.go",
    "build.sh" => "go/template/build.sh",
};

impl Lang {
    fn files(self) -> (Files, &'static str, &'static str) {
        match self {
            Lang::Rust => (RUST, "Rust", "rust"),
            Lang::Js => (JS, "JavaScript", "js"),
            Lang::Python => (PYTHON, "Python", "python"),
            Lang::C => (C, "C", "c"),
            Lang::Go => (GO, "Go", "go"),
        }
    }
}

/// Writes the scaffold into `dir` (which must not exist or be empty) and says what to do next.
pub(crate) fn run(lang: Lang, dir: &Path, sdk: Option<PathBuf>) -> anyhow::Result<()> {
    let (files, language, sdk_folder) = lang.files();
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("give the new policy's folder a name, e.g. `corbel new --lang js my-policy`")?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || !name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        bail!(
            "{name:?} is not a usable policy name: use letters, digits, '-' and '_', starting with a letter (it names the Rust crate too)"
        );
    }
    if dir.exists()
        && dir
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty: choose a new folder",
            dir.display()
        );
    }
    let sdk = find_sdk(sdk)?;
    let values = [
        ("{{name}}", name.clone()),
        ("{{crate}}", name.replace('-', "_")),
        ("{{sdk}}", sdk.display().to_string()),
        ("{{language}}", language.to_owned()),
        ("{{sdk_folder}}", sdk_folder.to_owned()),
    ];
    for (path, text) in COMMON.iter().chain(files) {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("failed to create {}", parent.display()))?;
        }
        let text = values.iter().fold(text.to_string(), |text, (key, value)| {
            text.replace(key, value)
        });
        std::fs::write(&target, text)
            .with_context(|| format!("failed to write {}", target.display()))?;
        if path.ends_with(".sh") {
            make_executable(&target)?;
        }
    }
    println!(
        "created {language} policy {name} in {}\n\n  cd {}\n  ./build.sh          # build/policy.wasm\n  corbel test tests   # run its cases",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("failed to make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// A folder holding Corbel's SDKs: it has `rust/Cargo.toml`, and `../wit` beside it.
fn is_sdk(dir: &Path) -> bool {
    dir.join("rust/Cargo.toml").is_file() && dir.join("../wit").is_dir()
}

fn find_sdk(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given.or_else(|| std::env::var_os("CORBEL_SDK").map(PathBuf::from)) {
        if !is_sdk(&dir) {
            bail!(
                "{} is not Corbel's sdk/ folder (it has no rust/Cargo.toml, or no ../wit beside it)",
                dir.display()
            );
        }
        return Ok(std::fs::canonicalize(&dir)?);
    }
    let starts = [std::env::current_exe().ok(), std::env::current_dir().ok()];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            if is_sdk(&dir.join("sdk")) {
                return Ok(std::fs::canonicalize(dir.join("sdk"))?);
            }
        }
    }
    bail!(
        "cannot find Corbel's sdk/ folder beside this corbel binary or above the working directory: pass --sdk PATH/TO/corbel/sdk (or set CORBEL_SDK)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_a_build_script() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python, Lang::C, Lang::Go] {
            let (files, ..) = lang.files();
            assert!(files.iter().any(|(p, _)| *p == "build.sh"), "{lang:?}");
        }
    }
}
