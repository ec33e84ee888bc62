//! The in-process path: a [`SpanExporter`] that writes into a [`Store`].

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tracewire_export::{BoxFuture, ExportError, SpanExporter};

use crate::store::Store;

/// Exports spans straight into a viewer's [`Store`]: no socket, no encoding. Get one from
/// [`RunningViewer::exporter`](crate::RunningViewer::exporter) or [`StoreExporter::new`].
#[derive(Clone, Debug)]
pub struct StoreExporter {
    store: Arc<Store>,
}

impl StoreExporter {
    /// An exporter into `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreExporter { store }
    }
}

impl SpanExporter for StoreExporter {
    fn name(&self) -> &str {
        "viewer"
    }

    fn export<'a>(
        &'a self,
        batch: &'a ExportTraceServiceRequest,
    ) -> BoxFuture<'a, Result<(), ExportError>> {
        let out = self.store.ingest(batch.clone());
        Box::pin(async move {
            if out.rejected > 0 {
                log::warn!("viewer: {} spans with invalid ids dropped", out.rejected);
            }
            Ok(())
        })
    }
}
