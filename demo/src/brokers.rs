//! Which brokers the order pipeline runs on: one already listening on its standard loopback
//! port; else a private one that `scripts/services.sh` starts for this run (on free loopback
//! ports, its state in a temp dir of its own) and stops at exit; else the hop is skipped, with
//! how to get the broker.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::pipeline::{Hop, Route};

/// `scripts/services.sh` of the repository this demo was built from.
fn services_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/services.sh")
}

/// How a hop's broker was found (or not).
enum Found {
    /// A broker at this URL: named by its variable, or on the standard port.
    Running { url: String, how: String },
    /// A private broker started for this run.
    Private(Private),
    /// None: why, and how to get one.
    Missing(String),
}

/// A broker `scripts/services.sh` started for this run: stopped (and its state dir removed)
/// when dropped.
struct Private {
    hop: Hop,
    url: String,
    /// The variables its `start` had (`stop` gets the same).
    env: Vec<(String, String)>,
    dir: PathBuf,
}

impl Drop for Private {
    fn drop(&mut self) {
        let stopped = Command::new("bash")
            .arg(services_sh())
            .args(["stop", self.hop.name()])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        match stopped {
            Ok(s) if s.success() => println!("stopped the private {}", self.hop.name()),
            _ => eprintln!(
                "could not stop the private {} (state in {})",
                self.hop.name(),
                self.dir.display()
            ),
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The brokers of this run; dropping it stops the private ones.
pub(crate) struct Brokers {
    /// The hops that run, in chain order.
    pub(crate) route: Route,
    _private: Vec<Private>,
}

impl Brokers {
    /// No pipeline.
    pub(crate) fn none() -> Brokers {
        Brokers {
            route: Vec::new(),
            _private: Vec::new(),
        }
    }

    /// Finds (or starts) the broker of each of `hops`, all at once, and prints what runs and
    /// what is skipped. Blocking: seconds when a private RabbitMQ or Kafka starts.
    pub(crate) fn find(hops: &[Hop]) -> Brokers {
        let run = std::process::id();
        let found: Vec<(Hop, Found)> = std::thread::scope(|s| {
            let handles: Vec<_> = hops
                .iter()
                .map(|&hop| (hop, s.spawn(move || find_one(hop, run))))
                .collect();
            handles
                .into_iter()
                .map(|(hop, h)| {
                    let found = h
                        .join()
                        .unwrap_or_else(|_| Found::Missing("its probe panicked".into()));
                    (hop, found)
                })
                .collect()
        });
        let mut brokers = Brokers::none();
        for (hop, found) in found {
            match found {
                Found::Running { url, how } => {
                    println!("  {:<13} {} ({how})", hop.label(), url);
                    brokers.route.push((hop, url));
                }
                Found::Private(private) => {
                    println!(
                        "  {:<13} {} (private: started by scripts/services.sh for this run, state in {})",
                        hop.label(),
                        private.url,
                        private.dir.display()
                    );
                    brokers.route.push((hop, private.url.clone()));
                    brokers._private.push(private);
                }
                Found::Missing(why) => {
                    eprintln!(
                        "  {:<13} SKIPPED: {why}\n                the {} worker does not run: orders skip this hop",
                        hop.label(),
                        hop.worker()
                    );
                }
            }
        }
        brokers
    }
}

fn find_one(hop: Hop, run: u32) -> Found {
    if !hop.built() {
        return Found::Missing(format!(
            "this demo was built without it: cargo run --release -p tracewire-demo --features {}",
            hop.feature()
        ));
    }
    if let Some(url) = std::env::var(hop.url_env())
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        return Found::Running {
            url,
            how: format!("from {}", hop.url_env()),
        };
    }
    let standard = SocketAddr::from(([127, 0, 0, 1], hop.port()));
    if TcpStream::connect_timeout(&standard, Duration::from_millis(500)).is_ok() {
        return Found::Running {
            url: hop.url(hop.port()),
            how: "already running".into(),
        };
    }
    let script = services_sh();
    let name = hop.name();
    // Kafka comes from Maven (no root); the others are Debian packages.
    let sudo = if hop == Hop::Kafka { "" } else { "sudo " };
    let get = format!(
        "{sudo}bash scripts/services.sh install {name} && bash scripts/services.sh start {name}"
    );
    if !script.is_file() {
        return Found::Missing(format!(
            "nothing on {standard}, and no {} to start one: in a tracewire clone, {get}",
            script.display()
        ));
    }
    let installed = Command::new("bash")
        .arg(&script)
        .args(["installed", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        return Found::Missing(format!(
            "nothing on {standard} and the server is not installed: {get}"
        ));
    }
    match start_private(hop, run, &script) {
        Ok(private) => Found::Private(private),
        Err(e) => Found::Missing(format!(
            "nothing on {standard}, and a private one did not start ({e}); try: bash scripts/services.sh start {name}"
        )),
    }
}

/// A free port on 127.0.0.1 (free when asked; the broker binds it a moment later).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The variables of `scripts/services.sh` that move `hop` off its standard ports, the client
/// port first; each gets a free port (`None`) or that value.
fn port_vars(hop: Hop) -> &'static [(&'static str, Option<&'static str>)] {
    match hop {
        // no monitoring port: the standard one may be taken by the standard server
        Hop::Nats => &[
            ("TRACEWIRE_NATS_PORT", None),
            ("TRACEWIRE_NATS_MONITOR_PORT", Some("0")),
        ],
        Hop::Redis => &[("TRACEWIRE_REDIS_PORT", None)],
        Hop::Rabbitmq => &[
            ("TRACEWIRE_RABBITMQ_PORT", None),
            ("TRACEWIRE_RABBITMQ_DIST_PORT", None),
        ],
        Hop::Mqtt => &[("TRACEWIRE_MOSQUITTO_PORT", None)],
        Hop::Kafka => &[
            ("TRACEWIRE_KAFKA_PORT", None),
            ("TRACEWIRE_KAFKA_CONTROLLER_PORT", None),
        ],
    }
}

/// `scripts/services.sh start` of `hop` on free ports, its state in a temp dir of its own.
fn start_private(hop: Hop, run: u32, script: &Path) -> Result<Private, String> {
    let err = |e: std::io::Error| e.to_string();
    let port = free_port().map_err(err)?;
    let mut env = Vec::new();
    for (i, (var, value)) in port_vars(hop).iter().enumerate() {
        let value = match value {
            Some(v) => (*v).to_owned(),
            None if i == 0 => port.to_string(),
            None => free_port().map_err(err)?.to_string(),
        };
        env.push(((*var).to_owned(), value));
    }
    let dir = std::env::temp_dir().join(format!("tracewire-demo-{run}-{}", hop.name()));
    env.push((
        "TRACEWIRE_SERVICES_DIR".into(),
        dir.to_string_lossy().into_owned(),
    ));
    println!(
        "starting a private {} (scripts/services.sh) ...",
        hop.name()
    );
    let out = Command::new("bash")
        .arg(script)
        .args(["start", hop.name()])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(err)?;
    let private = Private {
        hop,
        url: hop.url(port),
        env,
        dir,
    };
    if out.status.success() {
        Ok(private)
    } else {
        // `private` drops: whatever did start is stopped.
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.lines().next().unwrap_or("no message").to_owned())
    }
}
