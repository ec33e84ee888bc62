//! Availability (issue 13, items 1 and 4): a large request neither takes quadratic time nor
//! holds the store while every other endpoint waits; the receivers bound the memory of the
//! bodies they hold and time out clients that send headers or bodies too slowly.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use prost::Message;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracewire_viewer::{RunningViewer, ViewerBuilder};

fn builder() -> ViewerBuilder {
    ViewerBuilder::new()
        .otlp_grpc(None)
        .otlp_http(Some(0))
        .zipkin(Some(0))
        .ui(Some(0))
}

/// One request: `traces` traces of `spans` spans each (a chain), one attribute per span.
fn big_request(traces: u32, spans: u32) -> ExportTraceServiceRequest {
    let mut all = Vec::with_capacity((traces * spans) as usize);
    for t in 0..traces {
        for i in 0..u64::from(spans) {
            let mut s = span_of(nth_tid(t), i + 1, i, "step", i);
            s.attributes = vec![int_kv("i", i as i64)];
            all.push(s);
        }
    }
    request_of("big", all)
}

/// Posts `req` over OTLP/HTTP while another task asks `/tw/api/stats` every few ms; returns
/// how long the post took and the longest `/tw/api/stats` answer meanwhile.
async fn post_while_reading(
    v: &RunningViewer,
    req: ExportTraceServiceRequest,
) -> (Duration, Duration) {
    let url = format!("http://{}/v1/traces", v.addrs().otlp_http.unwrap());
    let stats = format!("http://{}/tw/api/stats", v.addrs().ui.unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                assert_eq!(get(&stats).await.status, 200);
                worst = worst.max(t.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            worst
        })
    };
    let body = req.encode_to_vec();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = Instant::now();
    let r = post(&url, "application/x-protobuf", body).await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (took, reader.await.unwrap())
}

/// Item 1: one request with 30 000 spans of one trace. Each span used to be compared with every
/// span of its trace under the store's lock: this took tens of seconds (debug build) during
/// which every endpoint waited. Now it is linear and the lock is held in short steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_trace_is_ingested_in_linear_time_without_blocking_readers() {
    let v = builder().start().await.unwrap();
    let (took, worst) = post_while_reading(&v, big_request(1, 30_000)).await;
    let s = v.store().stats();
    assert_eq!((s.traces, s.spans), (1, 30_000), "{s:?}");
    eprintln!(
        "30 000 spans of one trace: {took:.2?}; longest /tw/api/stats meanwhile: {worst:.2?}"
    );
    assert!(
        worst < Duration::from_secs(1),
        "/tw/api/stats waited {worst:?} while the request was ingested ({took:?})"
    );
    // the same span ids again (an exporter retry): replaced, not duplicated
    let (_, worst) = post_while_reading(&v, big_request(1, 30_000)).await;
    assert_eq!(v.store().stats().spans, 30_000);
    assert!(worst < Duration::from_secs(1), "retry: {worst:?}");
    v.shutdown().await;
}

/// Item 1: with a live subscriber (a UI tab open), a request of 30 000 traces used to look up
/// every trace it touched in a list of the traces touched so far, under the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_traces_with_a_live_subscriber_do_not_block_readers() {
    let v = builder().start().await.unwrap();
    let mut live = v.store().subscribe();
    let (took, worst) = post_while_reading(&v, big_request(30_000, 1)).await;
    assert_eq!(v.store().stats().traces, 30_000);
    eprintln!("30 000 traces, live subscriber: {took:.2?}; longest /tw/api/stats: {worst:.2?}");
    assert!(worst < Duration::from_secs(1), "{worst:?} ({took:?})");
    // the subscriber got the news (the channel keeps the latest 1024)
    let ev = live.recv().await;
    assert!(
        matches!(
            ev,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_))
        ),
        "{ev:?}"
    );
    v.shutdown().await;
}

/// Reads from `s` until the peer closes it or `within` passes; returns what was read, or
/// `None` if the connection was still open.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Item 4: a connection that never finishes its headers is closed after the header timeout
/// (it used to stay open indefinitely), on every HTTP listener.
#[tokio::test]
async fn incomplete_headers_are_cut_off() {
    let v = builder()
        .header_read_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let a = v.addrs();
    for addr in [a.otlp_http.unwrap(), a.zipkin.unwrap(), a.ui.unwrap()] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
            .await
            .unwrap();
        let t = Instant::now();
        let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "{addr}: still open after 5 s");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{addr}: {:?}",
            t.elapsed()
        );
        // an idle keep-alive connection is closed too
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some_and(|r| r.starts_with("HTTP/1.1 ")), "{addr}");
    }
    v.shutdown().await;
}

/// Item 4: on the gRPC port, a connection that does not start HTTP/2 (send its preface)
/// within the header timeout is closed (the server used to wait for it indefinitely); a real
/// gRPC client is served as before.
#[tokio::test]
async fn a_silent_grpc_connection_is_cut_off() {
    let v = builder()
        .otlp_grpc(Some(0))
        .header_read_timeout(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let addr = v.addrs().otlp_grpc.unwrap();
    for start in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(start).await.unwrap();
        let t = Instant::now();
        let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "{start:?}: still open after 5 s");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    for r in checkout(1) {
        client.export(r).await.unwrap();
    }
    assert_eq!(v.store().stats().spans, 4);
    v.shutdown().await;
}

/// Item 4: a body that does not arrive within the body timeout is answered 408 and its memory
/// given back.
#[tokio::test]
async fn slow_bodies_time_out() {
    let v = builder()
        .body_read_timeout(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    let a = v.addrs();
    for (addr, path, ct) in [
        (a.otlp_http.unwrap(), "/v1/traces", "application/x-protobuf"),
        (a.zipkin.unwrap(), "/api/v2/spans", "application/json"),
        (a.ui.unwrap(), "/tw/api/import", "application/json"),
    ] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\nContent-Length: 1000\r\n\r\n0123456789"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let r = read_until_closed(&mut s, Duration::from_secs(5)).await;
        let r = r.unwrap_or_else(|| panic!("{addr}{path}: no answer within 5 s"));
        assert!(r.starts_with("HTTP/1.1 408"), "{addr}{path}: {r}");
    }
    assert_eq!(v.store().stats().received_spans, 0);
    v.shutdown().await;
}

/// Item 4: request bodies share one memory budget. Two uploads that hold it all make a third
/// request wait, then answer it 503 with Retry-After (OTLP exporters retry that); once the
/// uploads are gone, requests are served again.
#[tokio::test]
async fn concurrent_bodies_share_a_memory_budget() {
    let max_body = 64 * 1024;
    let v = builder()
        .max_body(max_body)
        .max_body_memory(2 * max_body)
        .body_read_timeout(Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let url = format!("http://{}/v1/traces", v.addrs().otlp_http.unwrap());
    // two slow uploads announce a full-size body each and send a little of it
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut s = tokio::net::TcpStream::connect(v.addrs().otlp_http.unwrap())
            .await
            .unwrap();
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: {max_body}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(&[0x0a; 1000]).await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = checkout(1).remove(0).encode_to_vec();
    let t = Instant::now();
    let r = post(&url, "application/x-protobuf", body.clone()).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.headers["retry-after"], "1");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "it waited for room first"
    );
    // the uploads go away: their share comes back
    drop(slow);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = post(&url, "application/x-protobuf", body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    v.shutdown().await;
}
