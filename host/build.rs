//! Links the `corbel` binary with the functions it runs to start and to answer webhook requests
//! placed together (`link/startup-order.txt`, written by `cargo xtask startup-order`): the kernel
//! maps a binary's code around every page a process touches, so those functions spread over the
//! whole `.text` made 18 MiB of it resident where 4 MiB do (docs/benchmarks.md, "Peak RSS").
//!
//! Only where rustc links with LLD, its default linker on x86_64-unknown-linux-gnu since Rust
//! 1.90 (GNU ld has no `--symbol-ordering-file`). `CORBEL_NO_SYMBOL_ORDER=1` leaves it out, for
//! a build that switches the linker. Names the binary does not define are skipped by the linker,
//! so a file left behind by a dependency update costs memory, never a failed link.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/startup-order.txt");
    println!("cargo:rerun-if-env-changed=CORBEL_NO_SYMBOL_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let opted_out = std::env::var_os("CORBEL_NO_SYMBOL_ORDER").is_some_and(|v| v != "0");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let order = Path::new(&manifest_dir).join("link/startup-order.txt");
    if target == "x86_64-unknown-linux-gnu" && !opted_out && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
