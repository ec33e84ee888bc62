//! The span of one call and what gets recorded on it, shared by the server and client layers.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fastrace::Span;
use tracewire_core::intern::Interner;
use tracewire_core::semconv;
use tracewire_core::{PendingSpan, TraceContext};

use crate::conventions::RpcConventions;
use crate::status::{self, Side, WireStatus};

/// Span name for a path that is not `/package.Service/Method`.
pub(crate) const OTHER: &str = "_OTHER";

/// `package.Service/Method`, `package.Service` and `Method` as `&'static str`: the same few
/// recur on every call of a service, and a span holding a static string is not copied again
/// on fastrace's collector. Bounded: past it (a peer sending endless method names) they are
/// copied as before.
static NAMES: Interner = Interner::new(1024);

/// Splits a gRPC path `/package.Service/Method` into `("package.Service", "Method")`.
pub(crate) fn parse_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The span name for a path: `package.Service/Method`, or `_OTHER` for anything else (so a
/// peer sending garbage paths cannot create unbounded span names).
pub(crate) fn span_name(path: &str) -> Cow<'static, str> {
    match parse_path(path) {
        Some(_) => NAMES.cow(&path[1..]),
        None => Cow::Borrowed(OTHER),
    }
}

/// Adds the attributes known when the call starts to `span`, by value: they go into the
/// span's own list, where `Span::add_properties(&self)` would send fastrace's collector a
/// separate record. Lazy: nothing is computed (and `server` and `peer` are not called) for a
/// no-op, unsampled span.
///
/// `peer` is the other end of the connection when known: on the server, the client (recorded
/// as `client.address`/`client.port` and `network.peer.*`); on the client none is known, and
/// `network.peer.*` is recorded when the server address is an IP address (then it is the
/// peer).
pub(crate) fn record_start(
    span: Span,
    side: Side,
    conventions: RpcConventions,
    path: &str,
    server: impl FnOnce() -> Option<(Cow<'static, str>, Option<u16>)>,
    peer: impl FnOnce() -> Option<SocketAddr>,
) -> Span {
    span.with_properties(|| {
        let parsed = parse_path(path);
        let name = |v: &str| NAMES.cow(v);
        let grpc = Cow::Borrowed(semconv::RPC_SYSTEM_GRPC);
        let method = parsed.map(|(_, method)| {
            let value = if conventions.stable() {
                &path[1..]
            } else {
                method
            };
            (semconv::RPC_METHOD, name(value))
        });
        let server = server();
        let peer = match side {
            Side::Server => peer(),
            Side::Client => server.as_ref().and_then(|(host, port)| {
                let ip: std::net::IpAddr = host.parse().ok()?;
                Some(SocketAddr::new(ip, (*port)?))
            }),
        };
        let (server_address, server_port) = match server {
            Some((host, port)) => (
                Some((semconv::SERVER_ADDRESS, host)),
                port.map(|p| {
                    (
                        semconv::SERVER_PORT,
                        Cow::Owned(tracewire_http::u16_string(p)),
                    )
                }),
            ),
            None => (None, None),
        };
        // The peer's address and port as text, each formatted once: on the server the peer is
        // the client, recorded under both names.
        let peer = peer.map(|p| {
            (
                tracewire_http::ip_string(p.ip()),
                tracewire_http::u16_string(p.port()),
            )
        });
        let (client_address, client_port) = match (&peer, side) {
            (Some((ip, port)), Side::Server) => (
                Some((semconv::CLIENT_ADDRESS, Cow::Owned(ip.clone()))),
                Some((semconv::CLIENT_PORT, Cow::Owned(port.clone()))),
            ),
            _ => (None, None),
        };
        let (peer_address, peer_port) = match peer {
            Some((ip, port)) => (
                Some((semconv::NETWORK_PEER_ADDRESS, Cow::Owned(ip))),
                Some((semconv::NETWORK_PEER_PORT, Cow::Owned(port))),
            ),
            None => (None, None),
        };
        [
            conventions
                .legacy()
                .then(|| (semconv::RPC_SYSTEM, grpc.clone())),
            conventions
                .stable()
                .then(|| (semconv::RPC_SYSTEM_NAME, grpc.clone())),
            parsed
                .filter(|_| conventions.legacy())
                .map(|(service, _)| (semconv::RPC_SERVICE, name(service))),
            method,
            server_address,
            server_port,
            client_address,
            client_port,
            peer_address,
            peer_port,
        ]
        .into_iter()
        .flatten()
    })
}

/// `server.address` and `server.port` from a request's URI authority (the HTTP/2
/// `:authority`), else its `Host` header.
pub(crate) fn authority_of<B>(req: &http::Request<B>) -> Option<(Cow<'static, str>, Option<u16>)> {
    tracewire_http::ServerAuthority::of(req.uri(), req.headers()).map(|a| (a.address, a.port))
}

/// Tolerance when deciding whether a call dropped before its end ran out of time: tonic's
/// deadline timer starts a moment before the layer reads `grpc-timeout`.
const DEADLINE_SLACK: Duration = Duration::from_millis(2);

/// The span of one call until its status is known (its attributes reach fastrace in one piece
/// when it ends: a [`PendingSpan`]). Dropped unfinished, it records the call as cancelled (or
/// as DEADLINE_EXCEEDED when its deadline had passed).
#[derive(Debug)]
pub(crate) struct RpcSpan {
    span: PendingSpan,
    side: Side,
    conventions: RpcConventions,
    deadline: Option<Instant>,
}

impl RpcSpan {
    pub(crate) fn new(
        span: Span,
        side: Side,
        conventions: RpcConventions,
        deadline: Option<Instant>,
    ) -> Self {
        RpcSpan {
            span: PendingSpan::with_capacity(span, 5),
            side,
            conventions,
            deadline,
        }
    }

    /// The span while it runs.
    pub(crate) fn span(&self) -> Option<&Span> {
        (!self.span.is_ended()).then(|| self.span.span())
    }

    /// True when the call had a deadline and it has passed (give or take [`DEADLINE_SLACK`]).
    pub(crate) fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|d| Instant::now() + DEADLINE_SLACK >= d)
    }

    /// True while the span records (sampled and not yet ended): false for an unsampled call,
    /// which has nothing to record, no status to read.
    #[inline]
    pub(crate) fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// True once a status was recorded and the span ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.span.is_ended()
    }

    /// Records the call's status and ends the span.
    ///
    /// On the client, a CANCELLED status that arrives after the call's deadline is recorded as
    /// DEADLINE_EXCEEDED: that is what the call ran into (tonic reports a timeout it enforces
    /// itself, on either end, as CANCELLED).
    pub(crate) fn finish(&mut self, mut status: WireStatus) {
        if self.side == Side::Client && status.code == status::CANCELLED && self.deadline_passed() {
            status.code = status::DEADLINE_EXCEEDED;
        }
        if !self.span.is_ended() {
            record_status(&mut self.span, self.side, self.conventions, status);
            self.span.end();
        }
    }

    /// Records a failure below gRPC (a transport or body error: no status arrived) and ends
    /// the span. `error_type` is the error's Rust type name.
    pub(crate) fn fail(&mut self, error_type: &'static str, message: impl FnOnce() -> String) {
        if self.span.is_recording() {
            self.span.record_error(error_type, message());
        }
        self.span.end();
    }

    /// The stream ended cleanly but carried no `grpc-status`: UNKNOWN, as gRPC clients infer.
    pub(crate) fn finish_without_status(&mut self) {
        self.finish(WireStatus {
            code: status::UNKNOWN,
            message: Some("the stream ended without a grpc-status".to_owned()),
        });
    }
}

impl Drop for RpcSpan {
    #[inline]
    fn drop(&mut self) {
        // Inlined up to here: an unsampled span (nothing to record) or an ended one drops
        // without a call, and without building the status it would not record.
        if self.span.is_recording() {
            self.abandon();
        }
    }
}

impl RpcSpan {
    /// Dropped while recording: the call was cancelled, or ran out of time.
    fn abandon(&mut self) {
        let status = if self.deadline_passed() {
            WireStatus {
                code: status::DEADLINE_EXCEEDED,
                message: Some("the deadline (grpc-timeout) expired before the call ended".into()),
            }
        } else {
            WireStatus {
                code: status::CANCELLED,
                message: Some("the call was dropped before the end of its stream".into()),
            }
        };
        self.finish(status);
    }
}

/// `"0"`..`"16"` without allocating.
const CODE_NUMBERS: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

/// Records the status attributes on `span` (the caller ends it); an error status through the
/// one error helper ([`PendingSpan::record_error`]).
fn record_status(
    span: &mut PendingSpan,
    side: Side,
    conventions: RpcConventions,
    status: WireStatus,
) {
    let code = status.code;
    let name = status::code_name(code);
    span.extend(|| {
        let number = CODE_NUMBERS
            .get(usize::from(code))
            .map_or_else(|| Cow::Owned(code.to_string()), |n| Cow::Borrowed(*n));
        [
            conventions
                .legacy()
                .then_some((Cow::Borrowed(semconv::RPC_GRPC_STATUS_CODE), number)),
            conventions.stable().then_some((
                Cow::Borrowed(semconv::RPC_RESPONSE_STATUS_CODE),
                Cow::Borrowed(name),
            )),
        ]
        .into_iter()
        .flatten()
    });
    if side.is_error(code) {
        let description = status.message.map_or(Cow::Borrowed(name), Cow::Owned);
        span.record_error(name, description);
    }
}

/// What a traced response body carries: the span, and on the server the context to attach
/// while the handler's stream is polled.
#[derive(Debug)]
pub(crate) struct CallState {
    pub(crate) span: RpcSpan,
    pub(crate) context: Option<TraceContext>,
}

impl CallState {
    /// On the server (where a context is kept), runs `f` with the span as fastrace's local
    /// parent and the context attached: the handler's code runs inside the future and the
    /// response stream the layer polls. On the client nothing of the caller's runs inside the
    /// body, so `f` runs as is (no fastrace collect per frame).
    #[inline]
    pub(crate) fn scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.context.is_none() {
            return f();
        }
        if self.span.is_recording() {
            let _parent = self.span.span().map(Span::set_local_parent);
            tracewire_core::context::scope(&mut self.context, f)
        } else {
            // Unsampled: no fastrace parent to set or restore (not even an empty guard to
            // drop); the context is still attached, so the handler's calls propagate it.
            tracewire_core::context::scope(&mut self.context, f)
        }
    }
}

/// The deadline of a call from its `grpc-timeout` header and a configured limit, whichever
/// is earlier.
pub(crate) fn deadline(headers: &http::HeaderMap, limit: Option<Duration>) -> Option<Instant> {
    let header = headers
        .get(status::GRPC_TIMEOUT)
        .and_then(|v| status::parse_timeout(v.as_bytes()));
    let timeout = match (header, limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }?;
    Instant::now().checked_add(timeout)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("/tracewire.test.v1.Echo/Unary"),
            Some(("tracewire.test.v1.Echo", "Unary"))
        );
        assert_eq!(parse_path("/Echo/Unary"), Some(("Echo", "Unary")));
        for bad in ["", "/", "//x", "/svc/", "/svc", "svc/m", "/a/b/c"] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
        assert_eq!(span_name("/pkg.Svc/M"), "pkg.Svc/M");
        assert_eq!(span_name("/favicon.ico"), OTHER);
    }

    #[test]
    fn deadlines() {
        let mut h = http::HeaderMap::new();
        assert_eq!(deadline(&h, None), None);
        let before = Instant::now();
        let d = deadline(&h, Some(Duration::from_secs(1))).unwrap();
        assert!(
            d >= before + Duration::from_secs(1) && d <= Instant::now() + Duration::from_secs(1)
        );
        h.insert(status::GRPC_TIMEOUT, http::HeaderValue::from_static("50m"));
        let d = deadline(&h, Some(Duration::from_secs(1))).unwrap();
        assert!(d <= Instant::now() + Duration::from_millis(50));
        h.insert(
            status::GRPC_TIMEOUT,
            http::HeaderValue::from_static("bogus"),
        );
        assert_eq!(deadline(&h, None), None);
    }

    #[test]
    fn authority() {
        let req = http::Request::get("http://example.com:50051/pkg.Svc/M")
            .body(())
            .unwrap();
        assert_eq!(
            authority_of(&req),
            Some(("example.com".into(), Some(50051)))
        );
        let req = http::Request::get("/pkg.Svc/M")
            .header("host", "[::1]:8080")
            .body(())
            .unwrap();
        assert_eq!(authority_of(&req), Some(("::1".into(), Some(8080))));
        let req = http::Request::get("/pkg.Svc/M").body(()).unwrap();
        assert_eq!(authority_of(&req), None);
    }
}
