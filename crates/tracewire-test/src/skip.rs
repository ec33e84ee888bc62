//! Tests that need something outside the process — an interop peer (the Python venv, a
//! browser) or a broker (NATS, ...) — call [`skip()`](crate::skip::skip) when it is missing,
//! and return.
//!
//! libtest has no "skipped" status and hides the output of passing tests, so a skip is made
//! impossible to miss three ways: with `CI=true` it is a failure (a panic); otherwise it writes
//! a `SKIPPED` banner straight to the stderr handle (which libtest does not capture) and appends
//! `test: why` to the file named by `TRACEWIRE_SKIP_LOG`, which `scripts/test.sh` lists at the
//! end of the run.
//!
//! For the brokers, [`broker()`](crate::skip::broker()) is both: the URL, or a skip that says
//! how to start it.
//!
//! ```no_run
//! use tracewire_test::skip;
//!
//! #[test]
//! fn publishes_over_nats() {
//!     let Some(url) = skip::nats_url() else {
//!         skip::skip(
//!             "publishes_over_nats",
//!             "no NATS on 127.0.0.1:4222; run `bash scripts/services.sh start nats`",
//!         );
//!         return;
//!     };
//!     // ... connect to `url`
//! #   let _ = url;
//! }
//! ```

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The environment variable naming the file every skip is appended to (one `test: why` line
/// per skip); set by `scripts/test.sh`.
pub const SKIP_LOG_ENV: &str = "TRACEWIRE_SKIP_LOG";

/// The environment variable with the NATS URL the tests use; `scripts/test.sh` exports it when
/// a NATS server with JetStream answers on 127.0.0.1:4222.
pub const NATS_URL_ENV: &str = "TRACEWIRE_NATS_URL";

/// The URL of the local NATS server that `scripts/services.sh start nats` runs.
pub const NATS_DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// The environment variable with the Redis URL the tests use; `scripts/test.sh` exports it
/// when a Redis server answers on 127.0.0.1:6379.
pub const REDIS_URL_ENV: &str = "TRACEWIRE_REDIS_URL";

/// The URL of the local Redis server that `scripts/services.sh start redis` runs.
pub const REDIS_DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// The environment variable with the AMQP URL of the RabbitMQ server the tests use;
/// `scripts/test.sh` exports it when RabbitMQ answers on 127.0.0.1:5672.
pub const RABBITMQ_URL_ENV: &str = "TRACEWIRE_RABBITMQ_URL";

/// The URL of the local RabbitMQ server that `scripts/services.sh start rabbitmq` runs
/// (Debian's default `guest` user, the default vhost).
pub const RABBITMQ_DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The environment variable with the MQTT URL (`mqtt://HOST:PORT`) of the broker the tests
/// use; `scripts/test.sh` exports it when Mosquitto answers on 127.0.0.1:1883.
pub const MQTT_URL_ENV: &str = "TRACEWIRE_MQTT_URL";

/// The URL of the local Mosquitto that `scripts/services.sh start mosquitto` runs (MQTT 5,
/// anonymous).
pub const MQTT_DEFAULT_URL: &str = "mqtt://127.0.0.1:1883";

/// The environment variable with the Kafka bootstrap servers (`HOST:PORT`) the tests use;
/// `scripts/test.sh` exports it when Kafka answers on 127.0.0.1:9092.
pub const KAFKA_URL_ENV: &str = "TRACEWIRE_KAFKA_URL";

/// The bootstrap servers of the local Kafka that `scripts/services.sh start kafka` runs (one
/// node, KRaft, plaintext).
pub const KAFKA_DEFAULT_URL: &str = "127.0.0.1:9092";

/// How long [`broker_url`] waits for a TCP connection to the default address.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Whether this run is CI (`CI=true`), where a missing peer or broker is a failure.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Records that `test` did not run because of `why` (what is missing and how to get it).
///
/// With `CI=true` this panics: a missing peer or broker is a failure there. Otherwise it
/// prints a loud `SKIPPED` banner to stderr (not captured by libtest, so it shows even for a
/// passing test) and appends the line `test: why` to the file named by `TRACEWIRE_SKIP_LOG`,
/// if set (created if missing; I/O errors are ignored). The caller returns afterwards.
///
/// # Panics
///
/// When `CI=true`.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    let log = std::env::var_os(SKIP_LOG_ENV);
    // Straight to the stderr handle: libtest captures `eprintln!`, but a skip must be seen.
    let mut stderr = std::io::stderr().lock();
    record(
        is_ci(),
        log.as_deref().map(Path::new),
        test,
        why,
        &mut stderr,
    );
}

/// The URL of a broker to test against, or `None` when there is none (the caller then calls
/// [`skip()`]): the variable `env` when set and not empty (taken as is: an explicitly named
/// server that does not answer is an error for the test to report, not a skip); otherwise
/// `default_url` if a TCP connection to 127.0.0.1:`port` succeeds within [`CONNECT_TIMEOUT`].
/// One rule for every broker; [`nats_url`] and [`redis_url`] are this with their defaults.
pub fn broker_url(env: &str, default_url: &str, port: u16) -> Option<String> {
    if let Some(url) = std::env::var(env).ok().filter(|u| !u.trim().is_empty()) {
        return Some(url);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    answers(addr).then(|| default_url.to_owned())
}

/// The NATS URL to test against ([`broker_url`] with `TRACEWIRE_NATS_URL`,
/// `nats://127.0.0.1:4222`).
pub fn nats_url() -> Option<String> {
    broker_url(NATS_URL_ENV, NATS_DEFAULT_URL, 4222)
}

/// The Redis URL to test against ([`broker_url`] with `TRACEWIRE_REDIS_URL`,
/// `redis://127.0.0.1:6379`).
pub fn redis_url() -> Option<String> {
    broker_url(REDIS_URL_ENV, REDIS_DEFAULT_URL, 6379)
}

/// The RabbitMQ URL to test against ([`broker_url`] with `TRACEWIRE_RABBITMQ_URL`,
/// `amqp://guest:guest@127.0.0.1:5672/%2f`).
pub fn rabbitmq_url() -> Option<String> {
    broker_url(RABBITMQ_URL_ENV, RABBITMQ_DEFAULT_URL, 5672)
}

/// The MQTT URL to test against ([`broker_url`] with `TRACEWIRE_MQTT_URL`,
/// `mqtt://127.0.0.1:1883`).
pub fn mqtt_url() -> Option<String> {
    broker_url(MQTT_URL_ENV, MQTT_DEFAULT_URL, 1883)
}

/// The Kafka bootstrap servers to test against ([`broker_url`] with `TRACEWIRE_KAFKA_URL`,
/// `127.0.0.1:9092`).
pub fn kafka_url() -> Option<String> {
    broker_url(KAFKA_URL_ENV, KAFKA_DEFAULT_URL, 9092)
}

/// A broker of `scripts/services.sh` that tests talk to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    /// NATS with JetStream ([`nats_url`]).
    Nats,
    /// Redis ([`redis_url`]).
    Redis,
    /// RabbitMQ ([`rabbitmq_url`]).
    RabbitMq,
    /// Mosquitto, MQTT 5 ([`mqtt_url`]).
    Mosquitto,
    /// Apache Kafka ([`kafka_url`]).
    Kafka,
}

impl Broker {
    /// Its URL to test against, or `None` when there is none ([`broker_url`] with its
    /// variable and default).
    pub fn url(self) -> Option<String> {
        match self {
            Broker::Nats => nats_url(),
            Broker::Redis => redis_url(),
            Broker::RabbitMq => rabbitmq_url(),
            Broker::Mosquitto => mqtt_url(),
            Broker::Kafka => kafka_url(),
        }
    }

    /// What is missing and how to get it, for [`skip()`].
    pub fn missing(self) -> &'static str {
        match self {
            Broker::Nats => {
                "no NATS server on 127.0.0.1:4222; run `bash scripts/services.sh start nats`"
            }
            Broker::Redis => {
                "no Redis server on 127.0.0.1:6379; run `bash scripts/services.sh start redis`"
            }
            Broker::RabbitMq => {
                "no RabbitMQ on 127.0.0.1:5672; run `bash scripts/services.sh install rabbitmq && \
                 bash scripts/services.sh start rabbitmq`"
            }
            Broker::Mosquitto => {
                "no MQTT broker on 127.0.0.1:1883; run `bash scripts/services.sh start mosquitto`"
            }
            Broker::Kafka => {
                "no Kafka broker on 127.0.0.1:9092; run `bash scripts/services.sh install kafka && \
                 bash scripts/services.sh start kafka`"
            }
        }
    }
}

/// The URL of `broker` ([`Broker::url`]), or `None` after a [`skip()`] of `test` that says how
/// to start it (a failure under `CI=true`): the one prelude of every broker test.
///
/// ```no_run
/// use tracewire_test::skip::{self, Broker};
///
/// let Some(url) = skip::broker("publishes_over_nats", Broker::Nats) else {
///     return;
/// };
/// # let _ = url;
/// ```
#[track_caller]
pub fn broker(test: &str, broker: Broker) -> Option<String> {
    let url = broker.url();
    if url.is_none() {
        skip(test, broker.missing());
    }
    url
}

/// The host and port of a broker URL (`mqtt://HOST:PORT`, `HOST:PORT`; a trailing `/` is
/// ignored).
///
/// # Panics
///
/// When `url` has no `:PORT`.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url:?}"));
    let port = port
        .parse()
        .unwrap_or_else(|e| panic!("the port of {url:?}: {e}"));
    (host.to_owned(), port)
}

fn answers(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok()
}

/// One line, so the skip log stays one skip per line.
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[track_caller]
fn record(ci: bool, log: Option<&Path>, test: &str, why: &str, banner: &mut dyn Write) {
    let why = one_line(why);
    assert!(
        !ci,
        "{test}: {why} (CI=true: a missing peer or broker is a failure)"
    );
    let bar = "*".repeat(96);
    let _ = writeln!(banner, "\n{bar}\n*** SKIPPED {test}: {why}\n{bar}\n");
    if let Some(path) = log {
        let line = format!("{test}: {why}\n");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tracewire-skip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn a_skip_appends_one_line_per_skip() {
        let log = scratch("append.log");
        let mut banner = Vec::new();
        record(
            false,
            Some(&log),
            "first",
            "no venv; run `setup`",
            &mut banner,
        );
        record(false, Some(&log), "second", "two\nlines ", &mut banner);
        let banner = String::from_utf8(banner).unwrap();
        assert!(
            banner.contains("*** SKIPPED first: no venv; run `setup`\n"),
            "{banner}"
        );
        assert!(
            banner.contains("*** SKIPPED second: two lines\n"),
            "{banner}"
        );
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "first: no venv; run `setup`\nsecond: two lines\n"
        );
        let _ = std::fs::remove_file(&log);
    }

    #[test]
    fn a_skip_without_a_log_or_with_an_unwritable_one_only_prints() {
        let mut banner = Vec::new();
        record(false, None, "no_log", "nothing to append to", &mut banner);
        let dir = scratch("is-a-dir");
        std::fs::create_dir_all(&dir).unwrap();
        record(false, Some(&dir), "dir_log", "appending fails", &mut banner);
        let banner = String::from_utf8(banner).unwrap();
        assert_eq!(banner.matches("*** SKIPPED").count(), 2, "{banner}");
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    #[should_panic(
        expected = "needs_nats: no NATS (CI=true: a missing peer or broker is a failure)"
    )]
    fn a_skip_under_ci_is_a_failure() {
        let log = scratch("ci.log");
        record(true, Some(&log), "needs_nats", "no NATS", &mut Vec::new());
    }

    #[test]
    fn host_port_takes_the_last_colon_with_or_without_a_scheme() {
        assert_eq!(
            host_port("mqtt://127.0.0.1:1883/"),
            ("127.0.0.1".to_owned(), 1883)
        );
        assert_eq!(host_port("localhost:9092"), ("localhost".to_owned(), 9092));
    }

    #[test]
    fn a_listening_port_answers_and_a_closed_one_does_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(answers(addr));
        drop(listener);
        assert!(!answers(addr));
    }
}
