//! Interop peers: a Python script from the project's `.venv`, driven over a line protocol on
//! its stdin/stdout, killed when dropped (so every exit path of a test, a failed assertion
//! too, ends it).
//!
//! Blocking (std only, threads for the pipes): from a multi-threaded tokio test, call
//! [`Peer::expect`](crate::peer::Peer::expect) inside `tokio::task::block_in_place`.
//!
//! ```no_run
//! use tracewire_test::peer::{Peer, python};
//!
//! let Some(py) = python("my_interop_test", &["faststream.redis"]) else { return };
//! let mut peer = Peer::spawn(&py, "tests/peer.py".as_ref(), &[("first", "orders")]);
//! peer.expect("READY");
//! peer.send("publish");
//! peer.finish();
//! ```

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Peer::expect`] and [`Peer::finish`] wait.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The project's `.venv/bin/python` (made by `scripts/setup-python.sh`) when it imports every
/// module of `imports`; otherwise `None` after a [`skip`](crate::skip::skip) of `test` (a
/// failure under `CI=true`).
pub fn python(test: &str, imports: &[&str]) -> Option<PathBuf> {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .arg("-c")
            .arg(format!("import {}", imports.join(", ")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    crate::skip::skip(
        test,
        &format!(
            ".venv/bin/python importing {} not found; run `bash scripts/setup-python.sh`",
            imports.join(", ")
        ),
    );
    None
}

/// A running Python peer.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its stderr and the stdout lines that were not protocol.
    log: Arc<Mutex<String>>,
}

fn append(log: &Mutex<String>, line: &str) {
    let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
    log.push_str(line);
    log.push('\n');
}

impl Peer {
    /// Runs `python script --k v ...` with piped stdio, without the `OTEL_*` variables of this
    /// process (a sampler or a service name of ours must not change the peer), and without
    /// writing bytecode (no `__pycache__` next to a shared module in the source tree).
    ///
    /// # Panics
    ///
    /// When the script cannot be started.
    pub fn spawn(python: &Path, script: &Path, args: &[(&str, &str)]) -> Peer {
        let mut cmd = Command::new(python);
        cmd.arg(script);
        for (k, v) in args {
            cmd.arg(format!("--{k}")).arg(v);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("OTEL_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().map(BufReader::new);
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr
                .into_iter()
                .flat_map(|r| r.lines())
                .map_while(Result::ok)
            {
                append(&sink, &line);
            }
        });
        let (tx, lines) = channel();
        let stdout = child.stdout.take().map(BufReader::new);
        std::thread::spawn(move || {
            for line in stdout
                .into_iter()
                .flat_map(|r| r.lines())
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
            log,
        }
    }

    /// What the peer wrote to stderr, and its stdout lines that were not protocol.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The rest of the next stdout line that starts with `tag`, trimmed; other lines go to the
    /// log (FastStream logs to stdout).
    ///
    /// # Panics
    ///
    /// When the peer ends first, or nothing comes within [`PATIENCE`], with its output.
    pub fn expect(&mut self, tag: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => match line.strip_prefix(tag) {
                    Some(rest) => return rest.trim().to_owned(),
                    None => append(&self.log, &line),
                },
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait(Duration::from_secs(5));
                    // Let the stderr thread read to the end.
                    std::thread::sleep(Duration::from_millis(200));
                    panic!(
                        "the peer ended before {tag} ({status:?}); its output:\n{}",
                        self.log()
                    );
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no {tag} from the peer within {PATIENCE:?}; its output:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Writes `line` and a newline to the peer's stdin.
    ///
    /// # Panics
    ///
    /// When the peer's stdin is closed.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("writing to the peer: {e}; its output:\n{}", self.log()));
    }

    fn wait(&mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Closes its stdin and waits for a clean exit.
    ///
    /// # Panics
    ///
    /// When it does not exit within [`PATIENCE`], or exits with a failure.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        match self.wait(PATIENCE) {
            Some(status) => assert!(status.success(), "{status}; its output:\n{}", self.log()),
            None => panic!("the peer did not exit; its output:\n{}", self.log()),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
