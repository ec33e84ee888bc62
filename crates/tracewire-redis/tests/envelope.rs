//! The envelope against FastStream's own code, both directions, byte for byte: frames
//! FastStream 0.7.8 encodes (`envelope_peer.py`, run at test time — no bytes copied by hand)
//! equal ours for the same headers and body; FastStream reads our frames as we read its; the
//! older JSON envelope; garbage handled the same way by both; and what `Client` really puts on
//! the wire. Property tests: round trips, and arbitrary bytes never panic and, on failure,
//! leave the payload to the handler as it arrived.
//!
//! Without the venv (or Redis, for the last test): a loud, recorded skip (a failure under
//! `CI=true`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use serde_json::{Value, json};
use tracewire_redis::envelope::{self, Format};
use tracewire_test::peer::python;

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs FastStream's encoder/decoder on `request` (see `envelope_peer.py`).
fn oracle(py: &Path, request: &Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/envelope_peer.py");
    let mut child = Command::new(py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "envelope_peer.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// One message: FastStream's `headers=` (in order), its `correlation_id`, the body, and
/// whether FastStream gets it as `str` (then it adds `content-type: text/plain`).
struct Case {
    headers: Vec<(String, String)>,
    correlation_id: &'static str,
    body: Vec<u8>,
    text: bool,
}

impl Case {
    fn new(headers: &[(&str, &str)], body: &[u8], text: bool) -> Self {
        Case {
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            correlation_id: "5c1d9e4e-0000-4000-8000-00000000002a",
            body: body.to_vec(),
            text,
        }
    }

    fn request(&self) -> Value {
        json!({
            "headers": self.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "correlation_id": self.correlation_id,
            "body_hex": hex(&self.body),
            "body_kind": if self.text { "text" } else { "bytes" },
        })
    }

    /// The headers FastStream's `build` makes, in its order: the ones we must write too.
    fn all_headers(&self) -> Vec<(String, String)> {
        let mut h = vec![("correlation_id".to_owned(), self.correlation_id.to_owned())];
        if self.text {
            h.push(("content-type".to_owned(), "text/plain".to_owned()));
        }
        for (k, v) in &self.headers {
            match h.iter_mut().find(|(hk, _)| hk == k) {
                Some(e) => e.1 = v.clone(),
                None => h.push((k.clone(), v.clone())),
            }
        }
        h
    }

    fn ours(&self) -> Vec<u8> {
        let h = self.all_headers();
        let mut out = Vec::new();
        envelope::encode(
            h.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &self.body,
            &mut out,
        )
        .unwrap();
        out
    }
}

fn cases() -> Vec<Case> {
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03";
    let many: Vec<(String, String)> = (0..300)
        .map(|i| (format!("x-{i}"), format!("{i}")))
        .collect();
    let long = "v".repeat(60_000);
    let mut c = vec![
        Case::new(&[("traceparent", tp)], b"order 42", true),
        Case::new(&[("traceparent", tp)], b"\x00\xff\x89BIN binary", false),
        Case::new(&[], b"", false),
        Case::new(
            &[
                ("traceparent", tp),
                ("tracestate", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
                ("baggage", "user=alice,tenant=acme"),
            ],
            br#"{"id": 42}"#,
            false,
        ),
        Case::new(
            &[("content-type", "application/json"), ("traceparent", tp)],
            b"{}",
            false,
        ),
        Case::new(&[("correlation_id", "mine"), ("empty", "")], b"x", true),
        Case::new(&[("long", &long)], b"y", false),
    ];
    let mut m = Case::new(&[], b"z", false);
    m.headers = many;
    c.push(m);
    c
}

#[test]
fn frames_match_faststreams_byte_for_byte_both_ways() {
    let Some(py) = python("envelope_byte_for_byte", &["faststream.redis"]) else {
        return;
    };
    let cases = cases();
    let ours: Vec<Vec<u8>> = cases.iter().map(Case::ours).collect();
    let reply = oracle(
        &py,
        &json!({
            "encode": cases.iter().map(Case::request).collect::<Vec<_>>(),
            // The JSON envelope holds text only (FastStream's `dump_json` fails on other bytes).
            "encode_json": cases.iter().filter(|c| std::str::from_utf8(&c.body).is_ok()).map(Case::request).collect::<Vec<_>>(),
            "decode": ours.iter().map(|f| hex(f)).collect::<Vec<_>>(),
        }),
    );
    for (i, case) in cases.iter().enumerate() {
        // FastStream → bytes: exactly ours.
        let theirs = unhex(reply["encode"][i].as_str().unwrap());
        assert_eq!(
            hex(&theirs),
            hex(&ours[i]),
            "case {i}: FastStream's frame is ours"
        );

        // FastStream's frame → our decoder: its headers and body.
        let d = envelope::decode(&theirs).unwrap();
        assert_eq!(d.format(), Format::Binary);
        assert_eq!(d.body(), case.body.as_slice(), "case {i}");
        let headers: Vec<(String, String)> = d
            .headers()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(headers, case.all_headers(), "case {i}");

        // Our frame → FastStream's decoder: the same.
        let parsed = &reply["decode"][i];
        assert_eq!(parsed["body_hex"], hex(&case.body), "case {i}");
        let theirs: Vec<(String, String)> =
            serde_json::from_value(parsed["headers"].clone()).unwrap();
        assert_eq!(theirs, case.all_headers(), "case {i}");
    }
    let texts = cases
        .iter()
        .filter(|c| std::str::from_utf8(&c.body).is_ok());
    for (i, case) in texts.enumerate() {
        // The older JSON envelope (FastStream's `build` + `dump_json`): we read it as it does.
        let json_frame = unhex(reply["encode_json"][i].as_str().unwrap());
        let d = envelope::decode(&json_frame).unwrap();
        assert_eq!(d.format(), Format::Json, "case {i}");
        assert_eq!(d.body(), case.body.as_slice(), "case {i}: JSON");
        for (k, v) in case.all_headers() {
            assert_eq!(d.header(&k), Some(v.as_str()), "case {i}: JSON header {k}");
        }
    }
}

/// What FastStream does with garbage, we do: the payload is the body, untouched, with no
/// headers — and we also say why.
#[test]
fn garbage_is_handled_as_faststream_handles_it() {
    let Some(py) = python("envelope_garbage", &["faststream.redis"]) else {
        return;
    };
    let good = Case::new(&[("traceparent", "00-x")], b"body", false).ours();
    // Cut inside the frame: FastStream slices past the end without failing, so some of these
    // come out of its reader as an empty or cut body (a message lost); ours never do.
    let truncated: Vec<Vec<u8>> = (4..good.len() - 4).map(|n| good[..n].to_vec()).collect();
    let mut garbage: Vec<Vec<u8>> = Vec::new();
    let mut mangled = b"\x89BIN\n\x1a\n".to_vec();
    mangled.extend_from_slice(&good[8..]);
    garbage.push(mangled);
    let mut v2 = good.clone();
    v2[9] = 2;
    garbage.push(v2);
    let mut many = good.clone();
    many[18..20].copy_from_slice(&u16::MAX.to_be_bytes());
    garbage.push(many);
    let mut long = good.clone();
    long[20..22].copy_from_slice(&u16::MAX.to_be_bytes());
    garbage.push(long);
    let mut bad_utf8 = good.clone();
    let at = good.len() - 6;
    bad_utf8[at] = 0xff;
    garbage.push(bad_utf8);
    // FastStream's own frame for a non-ASCII header: it writes the length in characters, not
    // bytes, so not even FastStream can read it back (a FastStream bug, not asserted as right).
    let reply = oracle(
        &py,
        &json!({
            "encode": [Case::new(&[("k", "é")], b"x", false).request()],
        }),
    );
    garbage.push(unhex(reply["encode"][0].as_str().unwrap()));
    // Not envelopes at all: raw payloads for both.
    let raw: Vec<&[u8]> = vec![b"plain", b"{\"data\": 1}", b"\x89BIx", b""];

    let all: Vec<&[u8]> = garbage
        .iter()
        .chain(&truncated)
        .map(Vec::as_slice)
        .chain(raw.iter().copied())
        .collect();
    let reply = oracle(
        &py,
        &json!({"decode": all.iter().map(|g| hex(g)).collect::<Vec<_>>()}),
    );
    let mut lossy = 0;
    for (i, g) in garbage.iter().chain(&truncated).enumerate() {
        let theirs = &reply["decode"][i];
        if i < garbage.len() {
            assert_eq!(
                theirs["body_hex"],
                hex(g),
                "FastStream passes garbage {i} through"
            );
            assert_eq!(theirs["headers"], json!([]));
        } else if theirs["body_hex"] != hex(g) {
            lossy += 1;
        }
        // Ours: an error (counted by consumers), and the payload is handed over as it is.
        let e = envelope::decode(g).expect_err(&format!("garbage {i}: {}", hex(g)));
        assert!(!e.kind_str().is_empty());
    }
    eprintln!(
        "FastStream read {lossy} of {} truncated frames as a cut body",
        truncated.len()
    );
    let raw_at = garbage.len() + truncated.len();
    for (j, r) in raw.iter().enumerate() {
        let theirs = &reply["decode"][raw_at + j];
        assert_eq!(theirs["body_hex"], hex(r));
        let d = envelope::decode(r).unwrap();
        assert_eq!((d.format(), d.body()), (Format::Raw, *r));
    }
}

/// What `Client` puts on the wire is FastStream's frame for the same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_writes_what_faststream_writes() {
    let Some(py) = python("envelope_on_the_wire", &["faststream.redis"]) else {
        return;
    };
    let Some(url) = tracewire_test::skip::redis_url() else {
        tracewire_test::skip::skip(
            "envelope_on_the_wire",
            "no Redis on 127.0.0.1:6379; run `bash scripts/services.sh start redis`",
        );
        return;
    };
    use redis::AsyncCommands as _;
    use tracewire_core::{Sampler, Tracer};
    let messaging = tracewire_messaging::Messaging::new("redis")
        .tracer(Tracer::new().with_sampler(Sampler::AlwaysOn));
    let client =
        tracewire_redis::Client::with_messaging(redis::Client::open(url).unwrap(), messaging)
            .await
            .unwrap();
    let list = format!("tw-envelope-{}", std::process::id());
    let cid = "5c1d9e4e-0000-4000-8000-00000000002a";
    client
        .rpush(
            &list,
            tracewire_redis::Outgoing::text("order 42")
                .correlation_id(cid)
                .header("x-tenant", "acme"),
        )
        .await
        .unwrap();
    let mut conn = client.connection();
    let wire: Vec<u8> = conn.lpop(&list, None).await.unwrap();
    let d = envelope::decode(&wire).unwrap();
    let tp = d.header("traceparent").unwrap().to_owned();
    let case = Case {
        headers: vec![
            ("x-tenant".into(), "acme".into()),
            ("traceparent".into(), tp),
        ],
        correlation_id: cid,
        body: b"order 42".to_vec(),
        text: true,
    };
    let reply = oracle(&py, &json!({"encode": [case.request()]}));
    assert_eq!(reply["encode"][0].as_str().unwrap(), hex(&wire));
}

proptest! {
    #[test]
    fn round_trips(
        headers in prop::collection::vec(("[ -~]{0,20}", "\\PC{0,30}"), 0..20),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut frame = Vec::new();
        envelope::encode(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), &body, &mut frame).unwrap();
        prop_assert_eq!(frame.len(), envelope::encoded_len(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), body.len()));
        let d = envelope::decode(&frame).unwrap();
        prop_assert_eq!(d.format(), Format::Binary);
        prop_assert_eq!(d.body(), body.as_slice());
        let back: Vec<(String, String)> = d.headers().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(back, headers);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        match envelope::decode(&bytes) {
            Ok(d) if d.format() == Format::Raw => prop_assert_eq!(d.body(), bytes.as_slice()),
            Ok(d) => prop_assert!(d.body().len() <= bytes.len()),
            Err(_) => prop_assert!(bytes.starts_with(b"\x89BIN")),
        }
    }

    /// Mutations of a good frame: an error, or a canonical frame whose parts lie inside the
    /// payload.
    #[test]
    fn mutated_frames_fail_cleanly(
        at in 0usize..64,
        byte in any::<u8>(),
        cut in 0usize..80,
    ) {
        let mut frame = Vec::new();
        envelope::encode([("correlation_id", "c"), ("traceparent", "00-x")], b"payload", &mut frame).unwrap();
        if let Some(b) = frame.get_mut(at) {
            *b = byte;
        }
        frame.truncate(cut.min(frame.len()));
        if let Ok(d) = envelope::decode(&frame) {
            prop_assert!(d.body().len() <= frame.len());
            if d.format() == Format::Binary {
                // Only canonical frames are accepted: they re-encode to the same bytes.
                let mut again = Vec::new();
                envelope::encode(d.headers().iter(), d.body(), &mut again).unwrap();
                prop_assert_eq!(again, frame);
            }
        }
    }
}
