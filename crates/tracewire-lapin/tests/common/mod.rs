//! What the RabbitMQ test binaries share beyond `tracewire_test` (the broker's URL or a
//! recorded skip: `skip::broker`): names no other run uses, and the lock that keeps the
//! broker-restart test from pulling the broker from under the others.
#![allow(dead_code)] // not every binary uses everything

use std::fs::File;
use std::path::PathBuf;

/// A queue or exchange name no other test or run uses (the broker keeps durable state).
pub(crate) fn unique(name: &str) -> String {
    tracewire_test::unique('.', name)
}

/// Held while a test uses the broker: shared by every test, exclusive for the one that
/// restarts it. A file lock, so it holds across test binaries and nextest's processes too.
pub(crate) struct BrokerLock(#[allow(dead_code)] File);

fn lock_file() -> File {
    let path: PathBuf = std::env::temp_dir().join("tracewire-lapin-tests.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The broker stays up while this is held.
#[allow(clippy::incompatible_msrv)] // test-only: file locks are std since 1.89
pub(crate) fn shared() -> BrokerLock {
    let file = lock_file();
    file.lock_shared().expect("a shared lock on the broker");
    BrokerLock(file)
}

/// No other test uses the broker while this is held.
#[allow(clippy::incompatible_msrv)] // test-only: file locks are std since 1.89
pub(crate) fn exclusive() -> BrokerLock {
    let file = lock_file();
    file.lock().expect("an exclusive lock on the broker");
    BrokerLock(file)
}
