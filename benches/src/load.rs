//! The harness of the end-to-end load programs (`examples/{nats,rabbitmq,kafka,mqtt}_load.rs`,
//! driven by `benches/*_load.sh`): one process sends `n` messages that a handler in the same
//! process consumes through the broker, in one tracing [`Mode`], and prints the throughput and
//! the CPU the whole process spent per message — every thread: the runtime, the client's own
//! threads, fastrace's collector, tracewire's export worker, the OpenTelemetry batch thread.
//!
//! A load program describes its [`Broker`] and hands [`Broker::main`] its run: the clients
//! set up for the mode, then `n` messages timed from the first send ([`Timer`]) to the
//! handler's last completion, paced by [`Credits`] where the broker would drop what a slow
//! consumer cannot take. The rest is here:
//!
//! - the command line `<mode> [<transport>] [n]` ([`Broker::args`]; no transport argument for
//!   a broker of one transport);
//! - the tracing of the mode ([`Tracing`]): for `tracewire`, `tracewire-unsampled`,
//!   `tracewire-nosettle` and `fastrace-floor`, fastrace's reporter is tracewire's export
//!   pipeline (bounded queue of 2048, OTLP mapping, batching) into an exporter that encodes
//!   each request to OTLP protobuf, counts the spans and drops the bytes, and the global tracer
//!   is `parentbased(always_on)` (`always_off` for `tracewire-unsampled`); for `otel` and
//!   `otel-unsampled`, the peer's SDK tracer provider ([`crate::otel::provider`]);
//! - the output, two lines:
//!
//! ```text
//! THREADS µs/msg <thread name>=<CPU µs per message> ...
//! RESULT <mode> <transport> <n> <seconds> <msgs/s> <cpu µs/msg> <cpu utilisation> <spans exported> <spans dropped> <main thread cpu µs/msg> <other threads cpu µs/msg>
//! ```
//!
//! The main thread runs the runtime (clients, sender, handler); the others are the client's
//! threads, if any, and the tracing background threads. Spans are counted after a flush;
//! "dropped" is what tracewire's queue dropped.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::sync::Semaphore;
use tracewire_core::Tracer;
use tracewire_export::Pipeline;

use crate::export::{counting_pipeline, report_to};

/// What a load program's run fails with.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What traces the messages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Nothing: the bare client.
    Untraced,
    /// The tracewire integration, `parentbased(always_on)`: 100 % sampled.
    Tracewire,
    /// The same, root sampler `always_off` (contexts still propagated, flags `00`).
    TracewireUnsampled,
    /// The hand-written OpenTelemetry peer, `ParentBased(AlwaysOn)`.
    Otel,
    /// The same with `ParentBased(AlwaysOff)`.
    OtelUnsampled,
    /// `tracewire`, messages acked through the untraced message (no settle span: the peer's
    /// span count). NATS JetStream only.
    TracewireNoSettle,
    /// Bare fastrace root spans ([`Broker::floor_span`]), one per send and one per message
    /// handled (the handler in it), no propagation (a constant `traceparent` instead), into
    /// the same pipeline as `tracewire`: the floor of any fastrace-based instrumentation.
    FastraceFloor,
}

impl Mode {
    /// The modes every broker runs.
    pub const STANDARD: [Mode; 6] = [
        Mode::Untraced,
        Mode::Tracewire,
        Mode::TracewireUnsampled,
        Mode::Otel,
        Mode::OtelUnsampled,
        Mode::FastraceFloor,
    ];
    /// Every mode.
    pub const ALL: [Mode; 7] = [
        Mode::Untraced,
        Mode::Tracewire,
        Mode::TracewireUnsampled,
        Mode::Otel,
        Mode::OtelUnsampled,
        Mode::TracewireNoSettle,
        Mode::FastraceFloor,
    ];

    /// Its name on the command line and in the `RESULT` line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Untraced => "untraced",
            Mode::Tracewire => "tracewire",
            Mode::TracewireUnsampled => "tracewire-unsampled",
            Mode::Otel => "otel",
            Mode::OtelUnsampled => "otel-unsampled",
            Mode::TracewireNoSettle => "tracewire-nosettle",
            Mode::FastraceFloor => "fastrace-floor",
        }
    }

    /// Whether the tracewire integration traces the messages.
    pub fn tracewire(self) -> bool {
        matches!(
            self,
            Mode::Tracewire | Mode::TracewireUnsampled | Mode::TracewireNoSettle
        )
    }

    /// Whether the root sampler samples (false for the `-unsampled` modes only).
    pub fn sampled(self) -> bool {
        !matches!(self, Mode::TracewireUnsampled | Mode::OtelUnsampled)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is none of [`Mode::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMode(String);

impl fmt::Display for UnknownMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown mode {}", self.0)
    }
}

impl std::error::Error for UnknownMode {}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

/// One way a broker carries the messages (core NATS or JetStream, a QoS), and how many a run
/// sends unless told.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    /// Its name on the command line and in the `RESULT` line.
    pub name: &'static str,
    /// Messages per run by default.
    pub messages: u64,
}

/// What the harness needs to know of a broker's load program.
#[derive(Clone, Copy, Debug)]
pub struct Broker {
    /// `messaging.system` of its floor spans.
    pub system: &'static str,
    /// The modes it runs.
    pub modes: &'static [Mode],
    /// Its transports, the default first. A broker of one transport takes no transport
    /// argument; the transport's name stands in the `RESULT` line.
    pub transports: &'static [Transport],
}

/// A load run as the command line asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Args {
    /// The tracing mode (default `tracewire`).
    pub mode: Mode,
    /// The transport's name (default the broker's first).
    pub transport: &'static str,
    /// Messages to send (default the transport's).
    pub n: u64,
}

impl Broker {
    /// Parses `<mode> [<transport>] [n]` (the program's arguments, without its name).
    pub fn args(&self, args: impl IntoIterator<Item = String>) -> Result<Args, Error> {
        let mut args = args.into_iter();
        let mode = match args.next() {
            None => Mode::Tracewire,
            Some(m) => match m.parse() {
                Ok(mode) if self.modes.contains(&mode) => mode,
                // A text error: what `main` shows is its `Debug`.
                _ => return Err(UnknownMode(m).to_string().into()),
            },
        };
        let [first, ..] = self.transports else {
            return Err("a broker without transports".into());
        };
        let transport = match self.transports.len() {
            1 => first,
            _ => match args.next() {
                None => first,
                Some(name) => self
                    .transports
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| format!("unknown transport {name}"))?,
            },
        };
        let n = match args.next() {
            Some(n) => n.parse()?,
            None => transport.messages,
        };
        Ok(Args {
            mode,
            transport: transport.name,
            n,
        })
    }

    /// A load program's `main`: parses the command line, sets up the mode's tracing, runs
    /// `load` on a current-thread tokio runtime and prints its `THREADS` and `RESULT` lines.
    pub fn main(
        &self,
        load: impl AsyncFnOnce(&Args, &Tracing) -> Result<Timing, Error>,
    ) -> Result<(), Error> {
        let args = self.args(std::env::args().skip(1))?;
        let tracing = Tracing::new(args.mode)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let timing = rt.block_on(load(&args, &tracing))?;
        tracing.report(&args, &timing);
        Ok(())
    }

    /// A `fastrace-floor` span: a bare root span named `name` with the properties `span.kind`
    /// (`kind`) and `messaging.system`.
    pub fn floor_span(&self, name: &'static str, kind: &'static str) -> fastrace::Span {
        crate::floor_span(
            name,
            [("span.kind", kind), ("messaging.system", self.system)],
        )
    }
}

/// The environment variable `var`, or `default` where it is not set.
pub fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// What a mode set up: the exporters to flush and count at the end.
#[derive(Debug)]
pub struct Tracing {
    mode: Mode,
    pipeline: Option<Pipeline>,
    tw_exported: Arc<AtomicU64>,
    otel: Option<SdkTracerProvider>,
    otel_exported: Arc<AtomicU64>,
}

impl Tracing {
    /// Sets up `mode`'s tracing (see the [module](self) docs).
    pub fn new(mode: Mode) -> Result<Self, Error> {
        let tw_exported = Arc::new(AtomicU64::new(0));
        let otel_exported = Arc::new(AtomicU64::new(0));
        let mut pipeline = None;
        let mut otel = None;
        match mode {
            Mode::Untraced => {}
            Mode::Tracewire
            | Mode::TracewireUnsampled
            | Mode::TracewireNoSettle
            | Mode::FastraceFloor => {
                Tracer::set_global(crate::tracer(mode.sampled()));
                let p = counting_pipeline(tw_exported.clone())?;
                report_to(&p);
                pipeline = Some(p);
            }
            Mode::Otel | Mode::OtelUnsampled => {
                otel = Some(crate::otel::provider(mode.sampled(), otel_exported.clone()));
            }
        }
        Ok(Tracing {
            mode,
            pipeline,
            tw_exported,
            otel,
            otel_exported,
        })
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// tracewire's tracer for the mode (the global one, for clients configured explicitly).
    pub fn tracer(&self) -> Tracer {
        crate::tracer(self.mode.sampled())
    }

    /// The peer's tracer provider, in the `otel` modes.
    pub fn otel(&self) -> Option<&SdkTracerProvider> {
        self.otel.as_ref()
    }

    /// (spans exported, spans dropped at tracewire's queue), after flushing both sides.
    pub fn finish(&self) -> (u64, u64) {
        fastrace::flush();
        let mut dropped = 0;
        if let Some(p) = &self.pipeline {
            p.shutdown(Duration::from_secs(10));
            dropped = p.counters().dropped;
        }
        if let Some(p) = &self.otel {
            let _ = p.shutdown();
        }
        (
            self.tw_exported.load(Ordering::Relaxed) + self.otel_exported.load(Ordering::Relaxed),
            dropped,
        )
    }

    /// Prints the `THREADS` line, flushes ([`Tracing::finish`]) and prints the `RESULT` line.
    #[allow(clippy::print_stdout)] // the drivers read stdout
    pub fn report(&self, args: &Args, timing: &Timing) {
        let n = args.n;
        let threads: Vec<String> = timing
            .threads
            .iter()
            .map(|(name, ns)| format!("{name}={:.2}", *ns as f64 / 1e3 / n as f64))
            .collect();
        println!("THREADS µs/msg {}", threads.join(" "));
        let (spans, dropped) = self.finish();
        let secs = timing.wall.as_secs_f64();
        let per_message = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "RESULT {} {} {n} {secs:.3} {:.0} {:.2} {:.2} {spans} {dropped} {:.2} {:.2}",
            args.mode,
            args.transport,
            n as f64 / secs,
            per_message(timing.cpu),
            timing.cpu.as_secs_f64() / secs,
            per_message(timing.main_cpu),
            per_message(timing.cpu.saturating_sub(timing.main_cpu)),
        );
    }
}

/// Messages in flight, bounded: the sender takes [`Credits::CHUNK`] credits before each
/// `CHUNK` sends, the handler gives them back `CHUNK` at a time — so a broker that drops
/// what a slow consumer cannot take (core NATS, Mosquitto) drops nothing, and a queue does not
/// grow without bound.
#[derive(Clone, Debug)]
pub struct Credits(Arc<Semaphore>);

impl Credits {
    /// Credits taken and given back at a time.
    pub const CHUNK: u32 = 64;

    /// At most `window` messages in flight.
    pub fn new(window: u32) -> Self {
        Credits(Arc::new(Semaphore::new(window as usize)))
    }

    /// Before the `i`-th send (from 0): waits for `CHUNK` credits every `CHUNK` sends.
    pub async fn send(&self, i: u64) -> Result<(), Error> {
        if i % u64::from(Self::CHUNK) == 0 {
            self.0.acquire_many(Self::CHUNK).await?.forget();
        }
        Ok(())
    }

    /// After the `k`-th message handled (from 1): gives `CHUNK` credits back every `CHUNK`.
    pub fn handled(&self, k: u64) {
        if k % u64::from(Self::CHUNK) == 0 {
            self.0.add_permits(Self::CHUNK as usize);
        }
    }
}

/// CPU time (ns) of each thread of this process by thread id, with its name, from
/// `/proc/self/task/*/schedstat` (empty where that is not available).
fn thread_cpu() -> HashMap<String, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let read = |f: &str| std::fs::read_to_string(path.join(f)).unwrap_or_default();
        let ns = read("schedstat")
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let tid = task.file_name().to_string_lossy().into_owned();
        threads.insert(tid, (read("comm").trim().to_owned(), ns));
    }
    threads
}

/// What a run took: wall clock, whole-process CPU (`CLOCK_PROCESS_CPUTIME_ID`), the main
/// thread's CPU, and the CPU of each thread name (threads of one name summed).
#[derive(Clone, Debug)]
pub struct Timing {
    wall: Duration,
    cpu: Duration,
    main_cpu: Duration,
    threads: Vec<(String, u64)>,
}

/// Wall-clock, whole-process and per-thread CPU time since it started.
#[derive(Debug)]
pub struct Timer {
    wall: Instant,
    cpu: cpu_time::ProcessTime,
    threads: HashMap<String, (String, u64)>,
}

impl Timer {
    /// Starts the clocks.
    pub fn start() -> Self {
        Timer {
            wall: Instant::now(),
            cpu: cpu_time::ProcessTime::now(),
            threads: thread_cpu(),
        }
    }

    /// What the run took since [`Timer::start`].
    pub fn stop(self) -> Timing {
        let (wall, cpu) = (self.wall.elapsed(), self.cpu.elapsed());
        let before = |tid: &str| self.threads.get(tid).map_or(0, |(_, ns)| *ns);
        let main_tid = std::process::id().to_string();
        let after = thread_cpu();
        let main_cpu = after
            .get(&main_tid)
            .map(|(_, ns)| ns - before(&main_tid))
            .map_or(cpu, Duration::from_nanos);
        let mut threads: Vec<(String, u64)> = Vec::new();
        for (tid, (name, ns)) in &after {
            let spent = ns - before(tid);
            match threads.iter_mut().find(|(n, _)| n == name) {
                Some((_, total)) => *total += spent,
                None => threads.push((name.clone(), spent)),
            }
        }
        threads.sort();
        Timing {
            wall,
            cpu,
            main_cpu,
            threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Broker = Broker {
        system: "kafka",
        modes: &Mode::STANDARD,
        transports: &[Transport {
            name: "kafka",
            messages: 100_000,
        }],
    };
    const TWO: Broker = Broker {
        system: "nats",
        modes: &Mode::ALL,
        transports: &[
            Transport {
                name: "core",
                messages: 200_000,
            },
            Transport {
                name: "js",
                messages: 50_000,
            },
        ],
    };

    fn args(broker: &Broker, line: &str) -> Result<Args, String> {
        broker
            .args(line.split_whitespace().map(str::to_owned))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn mode_names_round_trip() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>(), Ok(mode));
        }
        assert!("otel-sampled".parse::<Mode>().is_err());
    }

    #[test]
    fn one_transport_takes_no_transport_argument() {
        let a = |mode, n| Args {
            mode,
            transport: "kafka",
            n,
        };
        assert_eq!(args(&ONE, ""), Ok(a(Mode::Tracewire, 100_000)));
        assert_eq!(args(&ONE, "otel"), Ok(a(Mode::Otel, 100_000)));
        assert_eq!(args(&ONE, "untraced 5000"), Ok(a(Mode::Untraced, 5000)));
        assert!(args(&ONE, "untraced kafka").is_err());
        assert_eq!(
            args(&ONE, "tracewire-nosettle"),
            Err("unknown mode tracewire-nosettle".to_owned())
        );
    }

    #[test]
    fn transports_pick_their_default_count() {
        let a = |mode, transport, n| Args { mode, transport, n };
        assert_eq!(args(&TWO, ""), Ok(a(Mode::Tracewire, "core", 200_000)));
        assert_eq!(
            args(&TWO, "tracewire-nosettle js"),
            Ok(a(Mode::TracewireNoSettle, "js", 50_000))
        );
        assert_eq!(
            args(&TWO, "fastrace-floor core 10"),
            Ok(a(Mode::FastraceFloor, "core", 10))
        );
        assert_eq!(
            args(&TWO, "otel ws"),
            Err("unknown transport ws".to_owned())
        );
    }

    #[test]
    fn credits_come_back_a_chunk_at_a_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let credits = Credits::new(2 * Credits::CHUNK);
        rt.block_on(async {
            for i in 0..u64::from(2 * Credits::CHUNK) {
                credits.send(i).await.expect("credits");
            }
        });
        assert_eq!(credits.0.available_permits(), 0);
        for k in 1..u64::from(Credits::CHUNK) {
            credits.handled(k);
        }
        assert_eq!(credits.0.available_permits(), 0);
        credits.handled(u64::from(Credits::CHUNK));
        assert_eq!(credits.0.available_permits(), Credits::CHUNK as usize);
    }
}
