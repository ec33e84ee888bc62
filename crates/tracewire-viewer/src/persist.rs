//! Optional persistence: an append-only file of length-prefixed OTLP protobuf requests.
//!
//! Each record is a little-endian `u32` length followed by an encoded
//! `ExportTraceServiceRequest`. On open the file is replayed into the store (a truncated tail,
//! e.g. after a crash, is ignored with a warning), then rewritten with only the traces the store
//! kept (compaction), then appended to on every ingest.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// Largest record accepted when reading a persistence file.
const MAX_RECORD: usize = 64 * 1024 * 1024;

pub(crate) struct Persist {
    path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

impl Persist {
    pub(crate) fn append(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        let r = self
            .out
            .write_all(&(bytes.len() as u32).to_le_bytes())
            .and_then(|_| self.out.write_all(bytes))
            .and_then(|_| self.out.flush());
        if let Err(e) = r {
            log::error!(
                "tracewire-viewer: writing {} failed, persistence disabled: {e}",
                self.path.display()
            );
            self.failed = true;
        }
    }
}

/// The records of the file at `path` (none when it does not exist); a truncated tail is
/// ignored and a record that does not decode is skipped, each with a warning.
pub(crate) fn read_records(path: &Path) -> io::Result<Vec<ExportTraceServiceRequest>> {
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    let mut rest = data.as_slice();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            log::warn!(
                "tracewire-viewer: {}: truncated record ignored",
                path.display()
            );
            break;
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_RECORD || len > tail.len() {
            log::warn!(
                "tracewire-viewer: {}: truncated record ignored",
                path.display()
            );
            break;
        }
        let (rec, tail) = tail.split_at(len);
        match ExportTraceServiceRequest::decode(rec) {
            Ok(r) => out.push(r),
            Err(e) => log::warn!(
                "tracewire-viewer: {}: bad record skipped: {e}",
                path.display()
            ),
        }
        rest = tail;
    }
    Ok(out)
}

/// Rewrites the file at `path` with the records `each` hands to its writer (through a temporary
/// file renamed over it: a crash leaves the old file or the new one).
pub(crate) fn rewrite(
    path: &Path,
    each: impl FnOnce(&mut dyn FnMut(ExportTraceServiceRequest) -> io::Result<()>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut w = BufWriter::new(File::create(&tmp)?);
        each(&mut |r: ExportTraceServiceRequest| {
            let b = r.encode_to_vec();
            w.write_all(&(b.len() as u32).to_le_bytes())?;
            w.write_all(&b)
        })?;
        w.flush()?;
    }
    std::fs::rename(&tmp, path)
}

impl Persist {
    /// Appends to the file at `path` from now on.
    pub(crate) fn append_to(path: &Path) -> io::Result<Persist> {
        let f = OpenOptions::new().append(true).create(true).open(path)?;
        Ok(Persist {
            path: path.to_owned(),
            out: BufWriter::new(f),
            failed: false,
        })
    }
}
