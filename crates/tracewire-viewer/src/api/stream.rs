//! Responses written while they are sent.
//!
//! A read can be as large as the store (a trace of 10^5 spans, a search of many traces), so the
//! read APIs never build a response in memory: a blocking task serializes straight into chunks
//! of [`CHUNK`] bytes that go to the client through a channel of two. Whatever the response's
//! size, it holds a few chunks of memory, and a client that stops reading stops the writer.
//! Searches also stop adding traces past [`super::MAX_RESPONSE_BYTES`].

use std::io::{self, Write};

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use http::header;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::store::{Store, StoredSpan, TraceId};

/// Bytes sent per chunk.
pub(crate) const CHUNK: usize = 64 * 1024;

/// An `io::Write` that sends what is written in chunks; blocks while the client is behind.
pub(crate) struct ChunkWriter {
    buf: Vec<u8>,
    tx: Option<mpsc::Sender<Result<Bytes, io::Error>>>,
    written: usize,
}

impl ChunkWriter {
    /// Bytes written so far.
    pub(crate) fn written(&self) -> usize {
        self.written
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        match &self.tx {
            Some(tx) => tx
                .blocking_send(Ok(chunk))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away")),
            None => Ok(()),
        }
    }

    /// A writer that keeps everything (tests).
    #[cfg(test)]
    pub(crate) fn collect() -> Self {
        ChunkWriter {
            buf: Vec::new(),
            tx: None,
            written: 0,
        }
    }

    /// What a [`collect`](Self::collect) writer holds.
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        self.written += b.len();
        if self.buf.len() >= CHUNK && self.tx.is_some() {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A JSON response whose body `write` produces on a blocking thread, chunk by chunk.
pub(crate) fn json<F>(write: F) -> Response
where
    F: FnOnce(&mut ChunkWriter) -> io::Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(2);
    let err_tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            written: 0,
        };
        let r = write(&mut w).and_then(|()| w.send());
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::BrokenPipe {
                // cut the response off rather than end it as if it were complete
                log::warn!("tracewire-viewer: writing a response failed: {e}");
                let _ = err_tx.blocking_send(Err(e));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

/// Writes `items` as a JSON array, each with `each`.
pub(crate) fn array<W: Write, T>(
    w: &mut W,
    items: impl IntoIterator<Item = T>,
    mut each: impl FnMut(&mut W, T) -> io::Result<()>,
) -> io::Result<()> {
    w.write_all(b"[")?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        each(w, item)?;
    }
    w.write_all(b"]")
}

/// Writes one value as JSON.
pub(crate) fn value<W: Write, T: serde::Serialize + ?Sized>(w: &mut W, v: &T) -> io::Result<()> {
    serde_json::to_writer(w, v).map_err(io::Error::other)
}

/// Writes the traces `ids`, comma-separated, each with `each` and fetched from the store only
/// when its turn comes (one left out if it was evicted meanwhile), stopping after `budget`
/// bytes (always at least one trace). Returns how many were written; `api` names the read API
/// in the warning of a cut response.
pub(crate) fn traces(
    w: &mut ChunkWriter,
    store: &Store,
    ids: &[TraceId],
    budget: usize,
    api: &str,
    mut each: impl FnMut(&mut ChunkWriter, &TraceId, &[StoredSpan]) -> io::Result<()>,
) -> io::Result<usize> {
    let mut n = 0;
    for id in ids {
        if n > 0 && w.written() >= budget {
            log::warn!(
                "tracewire-viewer: a {api} response stopped at {n} of {} traces ({budget} bytes)",
                ids.len()
            );
            break;
        }
        let Some(spans) = store.trace(id) else {
            continue;
        };
        if n > 0 {
            w.write_all(b",")?;
        }
        each(w, id, &spans)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn store(traces: u8) -> Store {
        let store = Store::default();
        for t in 1..=traces {
            store.ingest(ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![Span {
                            trace_id: vec![t; 16],
                            span_id: vec![t; 8],
                            name: "op".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            });
        }
        store
    }

    /// Writes `ids` as a JSON list of `[id, spans]`; returns (count, the list's ids).
    fn list(store: &Store, ids: &[TraceId], budget: usize) -> (usize, Vec<String>) {
        let mut w = ChunkWriter::collect();
        w.write_all(b"[").unwrap();
        let n = traces(&mut w, store, ids, budget, "test", |w, id, spans| {
            write!(w, "[\"{}\",{}]", crate::util::hex(id), spans.len())
        })
        .unwrap();
        w.write_all(b"]").unwrap();
        let v: Vec<(String, usize)> = serde_json::from_slice(&w.into_inner()).unwrap();
        (n, v.into_iter().map(|(id, _)| id).collect())
    }

    #[test]
    fn a_list_of_traces_stops_past_its_budget() {
        let store = store(3);
        let ids: Vec<TraceId> = (1..=3).map(|t| [t; 16]).collect();
        assert_eq!(list(&store, &ids, usize::MAX).0, 3);
        assert_eq!(list(&store, &ids, 1).0, 1, "always one trace");
        // a trace evicted before its turn is left out
        let (n, got) = list(&store, &[[9; 16], [2; 16]], usize::MAX);
        assert_eq!((n, got), (1, vec![crate::util::hex(&[2; 16])]));
    }
}
