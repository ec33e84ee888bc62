//! In-process fake OTLP collectors (HTTP and gRPC) that decode with the official proto types
//! and answer from a script.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

/// What the collector answers to the next request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Accept.
    Ok,
    /// HTTP status (+ `Retry-After` seconds).
    Http(u16, Option<u64>),
    /// gRPC status (+ `RetryInfo` delay).
    Grpc(tonic::Code, Option<Duration>),
    /// Wait this long, then accept.
    Slow(Duration),
    /// HTTP 200 with a body that never ends (bytes sent counted in `State::sent`).
    Endless,
}

/// One request the collector received (accepted or not).
#[derive(Clone, Debug)]
pub struct Received {
    pub request: ExportTraceServiceRequest,
    pub content_type: String,
    pub gzip: bool,
    pub headers: Vec<(String, String)>,
    pub accepted: bool,
    /// The body as received, decompressed (HTTP only; empty for gRPC).
    pub raw: Vec<u8>,
}

#[derive(Default)]
pub struct State {
    pub received: Mutex<Vec<Received>>,
    pub script: Mutex<VecDeque<Reply>>,
    /// Bytes of `Reply::Endless` bodies produced so far.
    pub sent: std::sync::atomic::AtomicU64,
}

impl State {
    fn next(&self) -> Reply {
        self.script.lock().unwrap().pop_front().unwrap_or(Reply::Ok)
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Binds `addr`, retrying for a while: a port just released may still be busy briefly.
fn bind(rt: &tokio::runtime::Runtime, addr: SocketAddr) -> tokio::net::TcpListener {
    let mut last = None;
    for _ in 0..250 {
        match rt.block_on(tokio::net::TcpListener::bind(addr)) {
            Ok(l) => return l,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cannot bind {addr}: {last:?}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A port nothing listens on (yet).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

impl Collector {
    /// Accepted spans, in arrival order.
    pub fn spans(&self) -> Vec<Span> {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.accepted)
            .flat_map(|r| r.request.resource_spans.iter())
            .flat_map(|r| r.scope_spans.iter())
            .flat_map(|s| s.spans.iter().cloned())
            .collect()
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// Stops listening (connections are dropped, the port is released).
    pub fn stop(mut self) -> Arc<State> {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.state.clone()
    }

    // ----- HTTP -----

    pub fn http() -> Collector {
        Collector::http_at("127.0.0.1:0".parse().unwrap(), Arc::default())
    }

    pub fn http_at(addr: SocketAddr, state: Arc<State>) -> Collector {
        let rt = runtime();
        let listener = bind(&rt, addr);
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle_http(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Collector {
            addr,
            state,
            rt: Some(rt),
        }
    }

    /// An HTTPS collector (HTTP/1.1 over rustls with `config`).
    #[cfg(feature = "tls")]
    pub fn https(config: Arc<rustls::ServerConfig>, state: Arc<State>) -> Collector {
        let rt = runtime();
        let listener = bind(&rt, "127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // Handshake failures (untrusted or missing client certificate) just
                    // close the connection.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| handle_http(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Collector {
            addr,
            state,
            rt: Some(rt),
        }
    }

    /// A gRPC collector over TLS; with `client_ca`, clients must present a certificate it
    /// signed.
    #[cfg(feature = "tls")]
    pub fn grpc_tls(
        cert_pem: &str,
        key_pem: &str,
        client_ca: Option<&str>,
        state: Arc<State>,
    ) -> Collector {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let rt = runtime();
        let listener = bind(&rt, "127.0.0.1:0".parse().unwrap());
        let addr = listener.local_addr().unwrap();
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
        if let Some(ca) = client_ca {
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        let svc = TraceServiceServer::new(GrpcService(state.clone()));
        rt.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .tls_config(tls)
                .unwrap()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Collector {
            addr,
            state,
            rt: Some(rt),
        }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    // ----- gRPC -----

    pub fn grpc() -> Collector {
        Collector::grpc_at("127.0.0.1:0".parse().unwrap(), Arc::default())
    }

    pub fn grpc_at(addr: SocketAddr, state: Arc<State>) -> Collector {
        let rt = runtime();
        let listener = bind(&rt, addr);
        let addr = listener.local_addr().unwrap();
        let svc = TraceServiceServer::new(GrpcService(state.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        rt.spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Collector {
            addr,
            state,
            rt: Some(rt),
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

type ReplyBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A body of 64 KiB chunks that never ends, counting what it produced.
fn endless(st: Arc<State>) -> ReplyBody {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let frames = std::iter::repeat_with(move || {
        st.sent
            .fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, Infallible>(hyper::body::Frame::data(chunk.clone()))
    });
    http_body_util::StreamBody::new(tokio_stream::iter(frames)).boxed()
}

async fn handle_http(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let content_type = header(&headers, "content-type").unwrap_or_default();
    let gzip = header(&headers, "content-encoding").as_deref() == Some("gzip");
    let path_ok = req.uri().path() == "/v1/traces" && req.method() == hyper::Method::POST;
    let mut body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut out)
            .unwrap();
        body = out;
    }
    let request = if content_type == "application/json" {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body).ok()
    } else if content_type == "application/x-protobuf" {
        ExportTraceServiceRequest::decode(body.as_slice()).ok()
    } else {
        None
    };
    let Some(request) = request.filter(|_| path_ok) else {
        return Ok(Response::builder()
            .status(400)
            .body(Full::new(Bytes::from_static(b"undecodable")).boxed())
            .unwrap());
    };
    let reply = st.next();
    let endless_body = matches!(reply, Reply::Endless);
    let (status, retry_after) = match reply {
        Reply::Ok | Reply::Endless => (200, None),
        Reply::Slow(d) => {
            tokio::time::sleep(d).await;
            (200, None)
        }
        Reply::Http(code, ra) => (code, ra),
        Reply::Grpc(..) => (500, None),
    };
    st.received.lock().unwrap().push(Received {
        request,
        content_type: content_type.clone(),
        gzip,
        headers,
        accepted: status == 200,
        raw: body,
    });
    let mut resp = Response::builder().status(status);
    if let Some(s) = retry_after {
        resp = resp.header("retry-after", s.to_string());
    }
    if endless_body {
        return Ok(resp.body(endless(st)).unwrap());
    }
    let body = if status == 200 {
        if content_type == "application/json" {
            Bytes::from_static(b"{}")
        } else {
            Bytes::from(ExportTraceServiceResponse::default().encode_to_vec())
        }
    } else {
        Bytes::from_static(b"rejected")
    };
    Ok(resp
        .header("content-type", content_type)
        .body(Full::new(body).boxed())
        .unwrap())
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

struct GrpcService(Arc<State>);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers: Vec<(String, String)> = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let gzip = header(&headers, "grpc-encoding").as_deref() == Some("gzip");
        let reply = self.0.next();
        if let Reply::Slow(d) = &reply {
            tokio::time::sleep(*d).await;
        }
        let status = match reply {
            Reply::Grpc(code, Some(delay)) => Some(tonic::Status::with_details(
                code,
                "scripted",
                Bytes::from(tracewire_otlp::grpc::retry_info_details(code, delay)),
            )),
            Reply::Grpc(code, None) => Some(tonic::Status::new(code, "scripted")),
            Reply::Http(..) => Some(tonic::Status::internal("http reply in grpc")),
            Reply::Ok | Reply::Slow(_) | Reply::Endless => None,
        };
        self.0.received.lock().unwrap().push(Received {
            request: request.into_inner(),
            content_type: "application/grpc".into(),
            gzip,
            headers,
            accepted: status.is_none(),
            raw: Vec::new(),
        });
        match status {
            Some(s) => Err(s),
            None => Ok(tonic::Response::new(ExportTraceServiceResponse::default())),
        }
    }
}
