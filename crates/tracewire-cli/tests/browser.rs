//! Browser tests: the real `tracewire view` binary serving the real UI, driven in Debian's
//! headless Chromium by `tests/browser/*.test.mjs` (playwright-core, no browser download):
//! `ui.test.mjs` (search, waterfall, details, live list), `messaging.test.mjs` (a pipeline
//! shaped like the demo's: colours, links both ways, messaging, critical path, service map),
//! `demo.test.mjs` (the service map after the real demo's checkout traffic).
//!
//! Needs `/usr/bin/chromium` (or `$CHROMIUM`), `node` and `tests/browser/node_modules`
//! (`bash scripts/setup-browser.sh` installs all three). Without them the test fails when
//! `CI=true` and skips loudly otherwise (`tracewire_test::skip`). It also saves a screenshot of
//! a multi-service trace: `docs/viewer.png` when missing or with `TRACEWIRE_UPDATE_SCREENSHOT=1`,
//! else in the target directory.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn missing_prerequisite(driver_dir: &Path) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("Chromium not found at {chromium}"));
    }
    if Command::new("node")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Some("node not found".into());
    }
    if !driver_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "{}/node_modules/playwright-core missing",
            driver_dir.display()
        ));
    }
    None
}

/// A running `tracewire view` on free ports, killed when dropped.
struct Viewer {
    _child: KillOnDrop,
    ui: String,
    otlp: String,
}

fn start_viewer() -> Viewer {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_tracewire"))
            .args([
                "view",
                "--otlp-grpc",
                "off",
                "--zipkin",
                "off",
                "--otlp-http",
                "0",
                "--ui",
                "0",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut ui, mut otlp) = (None, None);
    while ui.is_none() || otlp.is_none() {
        let line = lines
            .next()
            .expect("tracewire view exited before printing its URLs")
            .unwrap();
        if let Some(u) = line.strip_prefix("tracewire view: open ") {
            ui = Some(u.trim().to_owned());
        }
        if let Some(u) = line.trim().strip_prefix("OTLP/HTTP") {
            otlp = Some(u.trim().to_owned());
        }
    }
    // keep draining stdout so the child never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    Viewer {
        _child: child,
        ui: ui.unwrap(),
        otlp: otlp.unwrap(),
    }
}

/// The driver directory, or `None` (the test skipped) when a prerequisite is missing.
fn driver_dir_or_skip(test: &str) -> Option<PathBuf> {
    let driver_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(why) = missing_prerequisite(&driver_dir) {
        tracewire_test::skip::skip(
            test,
            &format!(
                "browser test prerequisites missing: {why}; run `bash scripts/setup-browser.sh` to install Chromium + playwright-core"
            ),
        );
        return None;
    }
    Some(driver_dir)
}

/// Runs `driver` against a fresh viewer, with `env`; fails the test when a check fails.
fn run_driver(driver_dir: &Path, driver: &str, env: &[(&str, &Path)]) {
    run_driver_on(&start_viewer(), driver_dir, driver, env);
}

/// Runs `driver` against `viewer`.
fn run_driver_on(viewer: &Viewer, driver_dir: &Path, driver: &str, env: &[(&str, &Path)]) {
    let status = Command::new("node")
        .arg(driver_dir.join(driver))
        .env("VIEWER_URL", &viewer.ui)
        .env("OTLP_URL", &viewer.otlp)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "browser checks of {driver} failed (see the output above)"
    );
}

#[test]
fn viewer_ui_in_headless_chromium() {
    let Some(driver_dir) = driver_dir_or_skip("viewer_ui_in_headless_chromium") else {
        return;
    };
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // docs/viewer.png is written when missing or with TRACEWIRE_UPDATE_SCREENSHOT=1 (so test
    // runs do not dirty the tree); otherwise the screenshot goes to the target directory.
    let docs_png = manifest.join("../../docs/viewer.png");
    let screenshot = if !docs_png.exists()
        || std::env::var("TRACEWIRE_UPDATE_SCREENSHOT").is_ok_and(|v| v == "1")
    {
        docs_png
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("viewer.png")
    };
    let _ = std::fs::remove_file(&screenshot);
    run_driver(&driver_dir, "ui.test.mjs", &[("SCREENSHOT", &screenshot)]);
    assert!(screenshot.exists());
}

/// Issue 14: the viewer on a messaging pipeline shaped like the demo's (the same services,
/// brokers, redelivery and batch), plus a pipeline of one trace per message.
#[test]
fn messaging_pipeline_in_headless_chromium() {
    let Some(driver_dir) = driver_dir_or_skip("messaging_pipeline_in_headless_chromium") else {
        return;
    };
    run_driver(&driver_dir, "messaging.test.mjs", &[]);
}

/// Issue 14: the service map after the real demo's traffic. The demo's checkout (`--brokers
/// none`: the order pipeline's brokers are shared with the demo's own tests, which would take
/// each other's orders) exports into this test's viewer; the map must count its calls.
/// Needs the demo's binary next to this crate's (a workspace build makes it; skipped, or failed
/// under `CI=true`, without it).
#[test]
fn service_map_of_the_demo_in_headless_chromium() {
    const TEST: &str = "service_map_of_the_demo_in_headless_chromium";
    let Some(driver_dir) = driver_dir_or_skip(TEST) else {
        return;
    };
    let demo = Path::new(env!("CARGO_BIN_EXE_tracewire"))
        .with_file_name(format!("tracewire-demo{}", std::env::consts::EXE_SUFFIX));
    if !demo.exists() {
        tracewire_test::skip::skip(
            TEST,
            &format!(
                "{} not built: run `cargo build -p tracewire-demo`",
                demo.display()
            ),
        );
        return;
    }
    let viewer = start_viewer();
    let endpoint = viewer.otlp.trim_end_matches("/v1/traces");
    let mut run = KillOnDrop(
        Command::new(&demo)
            .args(["--once", "--brokers", "none"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env_remove("TRACEWIRE_DEMO_BROKERS")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = run.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not finish within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "the demo failed: {status}");
    run_driver_on(&viewer, &driver_dir, "demo.test.mjs", &[]);
}
