//! A program of the workspace (an example, the demo) run to its end by a test.

use std::io::Read as _;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test fails before it exits.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` (stdin closed, stdout captured) until it exits; returns its status and stdout,
/// which is echoed to stderr for the test's log. Panics, after killing it, when it runs
/// longer than `timeout` or cannot be started.
pub fn run_to_end(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = match cmd.spawn() {
        Ok(child) => Running(Some(child)),
        Err(e) => panic!("cannot start {program}: {e}"),
    };
    let stdout = child.0.as_mut().and_then(|c| c.stdout.take());
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_string(&mut out);
        }
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.0.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => break status,
            Some(Ok(None)) => {}
            Some(Err(e)) => panic!("waiting for {program}: {e}"),
            None => unreachable!("the child is kept until it exits"),
        }
        assert!(
            Instant::now() < deadline,
            "{program} ran longer than {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.0 = None;
    let out = reader.join().unwrap_or_default();
    eprintln!("{out}");
    (status, out)
}
