//! Records the compiler's version for the resource's `process.runtime.version`.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let description = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)" → "1.95.0"
    let version = description
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    println!("cargo:rustc-env=TRACEWIRE_RUSTC_DESCRIPTION={description}");
    println!("cargo:rustc-env=TRACEWIRE_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
