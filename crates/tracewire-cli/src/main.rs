#![doc = include_str!("../README.md")]
#![allow(clippy::print_stdout)] // a command line prints its results

use std::process::ExitCode;

use tracewire_viewer::ViewerBuilder;

const USAGE: &str = "\
tracewire — distributed tracing toolkit

USAGE:
    tracewire view [OPTIONS]     start the local trace viewer and print its URL

VIEW OPTIONS (PORT: a number, 0 for any free port, or `off`):
    --otlp-grpc PORT     OTLP/gRPC receiver            [default: 4317]
    --otlp-http PORT     OTLP/HTTP receiver            [default: 4318]
    --zipkin PORT        Zipkin v2 receiver            [default: 9411]
    --ui PORT            web UI + Jaeger/Zipkin APIs   [default: 16686]
    --host IP            address to bind               [default: 127.0.0.1]
                         (anything else exposes every trace: there is no authentication)
    --allow-host NAME    also answer requests for this host name (repeatable); by default
                         only localhost, loopback addresses and the --host address are
                         answered, which keeps DNS-rebinding pages out
    --max-traces N       traces kept in memory         [default: 100000]
    --max-bytes SIZE     bytes of spans kept (e.g. 512M, 2G) [default: 512M]
    --max-body SIZE      largest request body          [default: 16M]
    --persist FILE       keep history in FILE across restarts
    --no-ui-fallback     fail instead of using a free port when the UI port is taken

    tracewire --help | --version
";

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!("[{}] {}", r.level().as_str().to_lowercase(), r.args());
        }
    }
    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

fn port(opt: &str, v: &str) -> Result<Option<u16>, String> {
    if v == "off" {
        return Ok(None);
    }
    v.parse::<u16>()
        .map(Some)
        .map_err(|_| format!("{opt}: expected a port number, 0 or `off`, got {v:?}"))
}

fn size(opt: &str, v: &str) -> Result<usize, String> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("{opt}: unknown size suffix in {v:?} (K, M or G)")),
            };
            (&v[..i], m)
        }
        _ => (v, 1),
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{opt}: expected a positive size like 512M, got {v:?}"))
}

fn parse_view(args: &[String]) -> Result<ViewerBuilder, String> {
    let mut b = ViewerBuilder::new();
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        if opt == "--no-ui-fallback" {
            b = b.ui_fallback(false);
            continue;
        }
        let (opt, inline) = match opt.split_once('=') {
            Some((o, v)) => (o, Some(v.to_owned())),
            None => (opt.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{opt} needs a value"))
        };
        b = match opt {
            "--otlp-grpc" => b.otlp_grpc(port(opt, &value()?)?),
            "--otlp-http" => b.otlp_http(port(opt, &value()?)?),
            "--zipkin" => b.zipkin(port(opt, &value()?)?),
            "--ui" => b.ui(port(opt, &value()?)?),
            "--host" => {
                let v = value()?;
                b.host(
                    v.parse()
                        .map_err(|_| format!("--host: not an IP address: {v:?}"))?,
                )
            }
            "--allow-host" => {
                let v = value()?;
                if v.is_empty() || v.contains(['/', ' ', '@']) {
                    return Err(format!("--allow-host: expected a host name, got {v:?}"));
                }
                b.allow_host(v)
            }
            "--max-traces" => {
                let v = value()?;
                b.max_traces(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("--max-traces: expected a positive number, got {v:?}")
                })?)
            }
            "--max-bytes" => b.max_bytes(size(opt, &value()?)?),
            "--max-body" => b.max_body(size(opt, &value()?)?),
            "--persist" => b.persist(value()?),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        };
    }
    Ok(b)
}

async fn view(builder: ViewerBuilder) -> ExitCode {
    let viewer = match builder.start().await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tracewire view: {e}");
            return ExitCode::FAILURE;
        }
    };
    let a = viewer.addrs();
    match viewer.ui_url() {
        Some(url) => println!("tracewire view: open {url}"),
        None => println!("tracewire view: UI off"),
    }
    if let Some(a) = a.otlp_grpc {
        println!("  OTLP/gRPC   {a}");
    }
    if let Some(a) = a.otlp_http {
        println!("  OTLP/HTTP   http://{a}/v1/traces");
    }
    if let Some(a) = a.zipkin {
        println!("  Zipkin      http://{a}/api/v2/spans");
    }
    if let Some(a) = a.ui {
        println!("  Jaeger API  http://{a}  (Grafana: Jaeger data source URL)");
    }
    let s = viewer.store().stats();
    println!(
        "  store       {} traces max, {} MiB max, {} traces loaded",
        s.max_traces,
        s.max_bytes >> 20,
        s.traces
    );
    println!("Ctrl-C to stop.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("tracewire view: cannot wait for Ctrl-C: {e}");
    }
    viewer.shutdown().await;
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let _ = log::set_logger(&LOGGER).map(|()| log::set_max_level(log::LevelFilter::Info));
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("view") => {
            let builder = match parse_view(&args[1..]) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("tracewire view: {e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("tracewire: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(view(builder))
        }
        Some("--version") | Some("-V") => {
            println!("tracewire {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help") | Some("-h") | Some("help") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
