//! Security (issue 13, items 5, 6, 7 and 9): no cross-site "simple" POST can write traces, no
//! DNS-rebinding page can read them, JSON is never sniffed, and Zipkin spans with invalid ids
//! are rejected and counted instead of silently dropped.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;

use prost::Message;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracewire_viewer::{RunningViewer, ViewerBuilder};

async fn start() -> RunningViewer {
    ViewerBuilder::new()
        .otlp_grpc(None)
        .otlp_http(Some(0))
        .zipkin(Some(0))
        .ui(Some(0))
        .start()
        .await
        .unwrap()
}

/// Item 5: every write endpoint wants the content type of its format. A page on another site
/// can send a "simple" POST (no content type, `text/plain`, a form type) without asking the
/// server first; it cannot send `application/json` or protobuf without a preflight, which the
/// CORS layer refuses to non-local origins.
#[tokio::test]
async fn writes_need_their_content_type() {
    let v = start().await;
    let a = v.addrs();
    let otlp_json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/otlp-trace.json"
    ))
    .unwrap();
    let zipkin =
        br#"[{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"x"}]"#;
    let import = format!("http://{}/tw/api/import", a.ui.unwrap());
    let otlp = format!("http://{}/v1/traces", a.otlp_http.unwrap());
    let zipkin_url = format!("http://{}/api/v2/spans", a.zipkin.unwrap());
    let simple = [
        None,
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ];
    for (url, body) in [
        (&import, otlp_json.clone()),
        (&otlp, otlp_json.clone()),
        (&zipkin_url, zipkin.to_vec()),
    ] {
        for ct in simple {
            let headers: Vec<(&str, &str)> = ct
                .map(|c| vec![("content-type", c), ("origin", "https://evil.example")])
                .unwrap_or_else(|| vec![("origin", "https://evil.example")]);
            let r = request("POST", url, &headers, body.clone()).await;
            assert_eq!(r.status, 415, "{url} with {ct:?}: {}", r.text());
        }
    }
    assert_eq!(v.store().stats().received_spans, 0, "nothing was stored");
    // the preflight a browser must send for application/json is refused to other origins
    let pre = request(
        "OPTIONS",
        &import,
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(pre.status, 403);
    // and the right content types work
    let r = post(&import, "application/json", otlp_json.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(&import, "application/json; charset=utf-8", otlp_json).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(
        &import,
        "application/x-protobuf",
        checkout(1).remove(0).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(&zipkin_url, "application/json", zipkin.to_vec()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    v.shutdown().await;
}

/// A raw HTTP/1.1 request (to forge what a client library would not send); returns the status
/// line and the whole response.
async fn raw(addr: SocketAddr, request: &str) -> (String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    (text.lines().next().unwrap_or("").to_owned(), text)
}

fn get_with_host(target: &str, host: Option<&str>) -> String {
    let host = host.map(|h| format!("Host: {h}\r\n")).unwrap_or_default();
    format!("GET {target} HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
}

/// Item 6: a DNS-rebinding page reaches the viewer under its own name; such requests are
/// refused on every HTTP listener. Loopback names and addresses are answered.
#[tokio::test]
async fn requests_must_name_the_viewer_as_host() {
    let v = start().await;
    let a = v.addrs();
    for (addr, path) in [
        (a.ui.unwrap(), "/tw/api/stats"),
        (a.ui.unwrap(), "/api/services"),
        (a.zipkin.unwrap(), "/api/v2/services"),
        (a.otlp_http.unwrap(), "/v1/traces"),
    ] {
        let port = addr.port();
        for host in [
            format!("evil.example:{port}"),
            "evil.example".to_owned(),
            format!("localhost.evil.example:{port}"),
            format!("192.168.7.7:{port}"),
        ] {
            let (status, text) = raw(addr, &get_with_host(path, Some(&host))).await;
            assert!(status.starts_with("HTTP/1.1 403"), "{host}{path}: {text}");
            assert!(text.contains("--allow-host"), "{text}");
        }
        let (status, _) = raw(addr, &get_with_host(path, None)).await;
        assert!(!status.contains(" 200 "), "no Host at all: {status}");
        // absolute-form target naming another host
        let (status, _) = raw(
            addr,
            &get_with_host(
                &format!("http://evil.example:{port}{path}"),
                Some("127.0.0.1"),
            ),
        )
        .await;
        assert!(
            status.starts_with("HTTP/1.1 403"),
            "absolute form: {status}"
        );
        for host in [
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
            format!("app.localhost:{port}"),
        ] {
            let (status, text) = raw(addr, &get_with_host(path, Some(&host))).await;
            assert!(!status.contains(" 403 "), "{host}{path}: {text}");
        }
    }
    v.shutdown().await;

    // a name the user configured is answered too
    let v = ViewerBuilder::embedded()
        .allow_host("viewer.test")
        .start()
        .await
        .unwrap();
    let ui = v.addrs().ui.unwrap();
    let (status, text) = raw(
        ui,
        &get_with_host("/tw/api/stats", Some(&format!("viewer.test:{}", ui.port()))),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{text}");
    let (status, _) = raw(ui, &get_with_host("/tw/api/stats", Some("other.test"))).await;
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    v.shutdown().await;
}

/// Item 7: JSON is never sniffed as something else (answers, errors, every listener).
#[tokio::test]
async fn json_responses_say_nosniff() {
    let v = start().await;
    for r in checkout(1) {
        v.store().ingest(r);
    }
    let a = v.addrs();
    let ui = format!("http://{}", a.ui.unwrap());
    let zipkin = format!("http://{}", a.zipkin.unwrap());
    let mut responses = Vec::new();
    for url in [
        format!("{ui}/tw/api/stats"),
        format!("{ui}/tw/api/services"),
        format!("{ui}/tw/api/search"),
        format!("{ui}/tw/api/traces/{}", tid_hex(1)),
        format!("{ui}/tw/api/traces/{}", tid_hex(2)),
        format!("{ui}/tw/api/traces/{}/otlp", tid_hex(1)),
        format!("{ui}/api/services"),
        format!("{ui}/api/traces?service=frontend"),
        format!("{ui}/api/traces/{}", tid_hex(1)),
        format!("{ui}/api/traces/not-hex"),
        format!("{ui}/api/dependencies"),
        format!("{zipkin}/api/v2/services"),
        format!("{zipkin}/api/v2/trace/{}", tid_hex(1)),
    ] {
        responses.push((url.clone(), get(&url).await));
    }
    let otlp = format!("http://{}/v1/traces", a.otlp_http.unwrap());
    responses.push((
        otlp.clone(),
        post(&otlp, "application/json", b"{}".to_vec()).await,
    ));
    responses.push((
        otlp.clone(),
        post(&otlp, "application/json", b"{".to_vec()).await,
    ));
    for (url, r) in responses {
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{url}"
        );
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{url}");
    }
    v.shutdown().await;
}

/// Item 9: Zipkin spans with all-zero ids, or ids of the wrong length, are rejected one by one
/// and counted — in the answer (like OTLP's partial success) and in the store's counters —
/// instead of the endpoint answering 202 for spans it dropped.
#[tokio::test]
async fn zipkin_rejects_and_counts_invalid_ids() {
    let v = start().await;
    let url = format!("http://{}/api/v2/spans", v.addrs().zipkin.unwrap());
    let t = "463ac35c9f6413ad48485a3953bb6124";
    let body = format!(
        r#"[
        {{"traceId":"{t}","id":"a2fb4a1d1a96d312","name":"ok"}},
        {{"traceId":"{t}","id":"b2fb4a1d1a96d312","parentId":"0000000000000000","name":"zero parent: a root"}},
        {{"traceId":"00000000000000000000000000000000","id":"c2fb4a1d1a96d312","name":"zero trace"}},
        {{"traceId":"{t}","id":"0000000000000000","name":"zero id"}},
        {{"traceId":"{t}","id":"d2fb4a1d1a96d312","parentId":"abc","name":"short parent"}},
        {{"traceId":"{t}","id":"e2fb4a1d1a96d312","parentId":"a2fb4a1d1a96d312a2fb","name":"long parent"}}
    ]"#
    );
    let r = post(&url, "application/json", body.into_bytes()).await;
    assert_eq!(r.status, 202, "{}", r.text());
    let j = r.json();
    assert_eq!(j["acceptedSpans"], 2);
    assert_eq!(j["rejectedSpans"], 4);
    assert!(
        j["errorMessage"].as_str().unwrap().contains("traceId"),
        "{j}"
    );
    let s = v.store().stats();
    assert_eq!(
        (s.spans, s.rejected_spans, s.received_spans),
        (2, 4, 6),
        "{s:?}"
    );
    // nothing valid: 400, still counted
    let r = post(
        &url,
        "application/json",
        format!(r#"[{{"traceId":"{t}","id":"0000000000000000"}}]"#).into_bytes(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(v.store().stats().rejected_spans, 5);
    // all valid: 202 and no body, as Zipkin answers
    let r = post(
        &url,
        "application/json",
        format!(r#"[{{"traceId":"{t}","id":"f2fb4a1d1a96d312"}}]"#).into_bytes(),
    )
    .await;
    assert_eq!((r.status, r.body.len()), (202, 0));
    v.shutdown().await;
}
