//! The `tracewire` binary: usage errors and a taken port give clear messages and exit codes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn tracewire(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tracewire"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = tracewire(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tracewire view") && out.contains("--otlp-grpc"),
        "{out}"
    );
    let (code, out, _) = tracewire(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("tracewire "), "{out}");
    let (code, _, err) = tracewire(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("USAGE"), "{err}");
}

#[test]
fn bad_options_name_the_option() {
    for (args, needle) in [
        (vec!["view", "--ui", "http"], "--ui: expected a port number"),
        (
            vec!["view", "--max-bytes", "12X"],
            "--max-bytes: unknown size suffix",
        ),
        (
            vec!["view", "--max-traces", "0"],
            "--max-traces: expected a positive number",
        ),
        (
            vec!["view", "--host", "localhost.example"],
            "--host: not an IP address",
        ),
        (vec!["view", "--persist"], "--persist needs a value"),
        (
            vec!["view", "--allow-host", "http://x/"],
            "--allow-host: expected a host name",
        ),
        (vec!["view", "--bogus"], "unknown option \"--bogus\""),
    ] {
        let (code, _, err) = tracewire(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_taken_receiver_port_fails_with_a_useful_message() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, _, err) = tracewire(&[
        "view",
        "--otlp-grpc",
        "off",
        "--zipkin",
        "off",
        "--ui",
        "off",
        "--otlp-http",
        &port,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains("in use") && err.contains("--otlp-http PORT"),
        "{err}"
    );
}

/// Starts `tracewire view` with `args`, waits until it is serving, stops it; returns stderr.
fn stderr_of_a_started_viewer(args: &[&str]) -> String {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tracewire"))
        .arg("view")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("Ctrl-C to stop"));
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(started, "tracewire view did not start: {err}");
    err
}

/// Issue 13, item 7: bound to a non-loopback address, `tracewire view` says loudly that every
/// trace is exposed (there is no authentication); bound to loopback, it does not.
#[test]
fn a_non_loopback_bind_is_warned_about() {
    let quiet = [
        "--otlp-grpc",
        "off",
        "--otlp-http",
        "off",
        "--zipkin",
        "off",
        "--ui",
        "0",
    ];
    let err = stderr_of_a_started_viewer(&[&["--host", "0.0.0.0"][..], &quiet[..]].concat());
    assert!(
        err.contains("[warn]") && err.contains("0.0.0.0") && err.contains("no authentication"),
        "{err}"
    );
    let err = stderr_of_a_started_viewer(&quiet);
    assert!(!err.contains("no authentication"), "{err}");
}
