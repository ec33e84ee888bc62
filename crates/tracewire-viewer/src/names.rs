//! The names behind the services and operations lists: every service name and, per service,
//! every span name (with the span kinds seen), each counted by the stored spans that use it.
//!
//! A name is kept exactly as long as a stored span uses it: when the last such span is evicted
//! (or replaced), the name goes. The index's own size is part of the store's byte bound.
//! Service names are resolved and *pinned* (counted for the spans about to be merged) before a
//! batch is merged, so a service cannot disappear between two merge steps of one batch.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Distinct span names indexed per service; a runaway number of names stops growing the index
/// (their spans are still stored and searchable, their names are not listed).
pub(crate) const MAX_OPERATIONS_PER_SERVICE: usize = 10_000;
/// Distinct services indexed; past it, new services share one bucket.
pub(crate) const MAX_SERVICES: usize = 10_000;
/// The shared bucket's name.
pub(crate) const OVERFLOW: &str = "(too many services)";

/// Estimated bytes of one service entry besides its name: the slot, the id map entry, the
/// `Arc<str>` header and two allocations.
const SERVICE_BYTES: usize = 128;
/// Estimated bytes of one operation entry besides its name: a B-tree slot and the boxed name.
const OPERATION_BYTES: usize = 64;

struct Op {
    /// Bit set of the span kinds seen.
    kinds: u8,
    /// Stored spans with this name.
    spans: u64,
}

struct Service {
    name: Arc<str>,
    /// Stored (or pinned) spans of this service.
    spans: u64,
    ops: BTreeMap<Box<str>, Op>,
}

#[derive(Default)]
pub(crate) struct Names {
    slots: Vec<Option<Service>>,
    free: Vec<u32>,
    ids: HashMap<Arc<str>, u32>,
    bytes: usize,
    operations: usize,
}

impl Names {
    /// Estimated heap bytes of the index (names included).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of indexed services.
    pub(crate) fn services_len(&self) -> usize {
        self.ids.len()
    }

    /// Number of indexed operations (all services).
    pub(crate) fn operations_len(&self) -> usize {
        self.operations
    }

    /// The id of a service, if it is indexed.
    pub(crate) fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name of service `id`.
    pub(crate) fn name(&self, id: u32) -> Option<&Arc<str>> {
        self.slot(id).map(|s| &s.name)
    }

    fn slot(&self, id: u32) -> Option<&Service> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, id: u32) -> Option<&mut Service> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Finds or adds service `name` and counts `spans` more spans for it; returns the name as
    /// stored (the overflow bucket's, past [`MAX_SERVICES`]) and its id.
    pub(crate) fn pin(&mut self, name: &str, spans: u64) -> (Arc<str>, u32) {
        let id = match self.ids.get(name) {
            Some(id) => *id,
            None if self.ids.len() >= MAX_SERVICES && name != OVERFLOW => {
                return self.pin(OVERFLOW, spans);
            }
            None => self.add(name),
        };
        match self.slot_mut(id) {
            Some(s) => {
                s.spans += spans;
                (s.name.clone(), id)
            }
            // unreachable: `ids` and `slots` change together
            None => (Arc::from(name), id),
        }
    }

    fn add(&mut self, name: &str) -> u32 {
        let name: Arc<str> = Arc::from(name);
        let service = Service {
            name: name.clone(),
            spans: 0,
            ops: BTreeMap::new(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                if let Some(slot) = self.slots.get_mut(id as usize) {
                    *slot = Some(service);
                }
                id
            }
            None => {
                self.slots.push(Some(service));
                (self.slots.len() - 1) as u32
            }
        };
        self.bytes += name.len() + SERVICE_BYTES;
        self.ids.insert(name, id);
        id
    }

    /// One span of service `id` is gone; the service goes with its last span.
    pub(crate) fn release(&mut self, id: u32) {
        let Some(s) = self.slot_mut(id) else {
            return;
        };
        s.spans = s.spans.saturating_sub(1);
        if s.spans > 0 {
            return;
        }
        if let Some(s) = self.slots.get_mut(id as usize).and_then(Option::take) {
            self.bytes = self.bytes.saturating_sub(s.name.len() + SERVICE_BYTES);
            for name in s.ops.keys() {
                self.bytes = self.bytes.saturating_sub(name.len() + OPERATION_BYTES);
            }
            self.operations = self.operations.saturating_sub(s.ops.len());
            self.ids.remove(&s.name);
            self.free.push(id);
        }
    }

    /// Counts a span named `name` of kind `kind` for service `id`; returns whether it is indexed
    /// (`false` when the service already has [`MAX_OPERATIONS_PER_SERVICE`] names).
    pub(crate) fn add_op(&mut self, id: u32, name: &str, kind: i32) -> bool {
        let bit = 1u8 << (kind.clamp(0, 7) as u8);
        let Some(s) = self.slots.get_mut(id as usize).and_then(Option::as_mut) else {
            return false;
        };
        if let Some(op) = s.ops.get_mut(name) {
            op.kinds |= bit;
            op.spans += 1;
            return true;
        }
        if s.ops.len() >= MAX_OPERATIONS_PER_SERVICE {
            return false;
        }
        s.ops.insert(
            name.into(),
            Op {
                kinds: bit,
                spans: 1,
            },
        );
        self.bytes += name.len() + OPERATION_BYTES;
        self.operations += 1;
        true
    }

    /// Adds span kind `kind` to the kinds seen for the indexed name `name` of service `id`.
    pub(crate) fn add_kind(&mut self, id: u32, name: &str, kind: i32) {
        let bit = 1u8 << (kind.clamp(0, 7) as u8);
        if let Some(op) = self
            .slots
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .and_then(|s| s.ops.get_mut(name))
        {
            op.kinds |= bit;
        }
    }

    /// One indexed span named `name` of service `id` is gone; the name goes with its last span.
    pub(crate) fn remove_op(&mut self, id: u32, name: &str) {
        let Some(s) = self.slots.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(op) = s.ops.get_mut(name) else {
            return;
        };
        op.spans = op.spans.saturating_sub(1);
        if op.spans == 0 {
            s.ops.remove(name);
            self.bytes = self.bytes.saturating_sub(name.len() + OPERATION_BYTES);
            self.operations = self.operations.saturating_sub(1);
        }
    }

    /// Every service name.
    pub(crate) fn services(&self) -> impl Iterator<Item = &Arc<str>> {
        self.ids.keys()
    }

    /// The span names of service `name` with the kinds seen for each (sorted by name).
    pub(crate) fn operations(&self, name: &str) -> Vec<(String, Vec<i32>)> {
        let Some(s) = self.id(name).and_then(|id| self.slot(id)) else {
            return Vec::new();
        };
        s.ops
            .iter()
            .map(|(name, op)| {
                let kinds = (0..8).filter(|k| op.kinds & (1 << k) != 0).collect();
                (name.to_string(), kinds)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_as_long_as_their_spans() {
        let mut n = Names::default();
        let (_, a) = n.pin("a", 2);
        assert!(n.add_op(a, "GET /", 2));
        assert!(n.add_op(a, "GET /", 3));
        assert_eq!(n.operations("a"), vec![("GET /".to_owned(), vec![2, 3])]);
        let before = n.bytes();
        assert!(before > 0);
        n.remove_op(a, "GET /");
        n.release(a);
        assert_eq!(n.operations("a").len(), 1, "one span left");
        n.remove_op(a, "GET /");
        n.release(a);
        assert!(n.id("a").is_none());
        assert_eq!((n.bytes(), n.services_len(), n.operations_len()), (0, 0, 0));
        // the slot is reused
        let (_, b) = n.pin("b", 1);
        assert_eq!(b, a);
        assert_eq!(n.name(b).map(|s| &**s), Some("b"));
    }

    #[test]
    fn too_many_services_share_a_bucket() {
        let mut n = Names::default();
        for i in 0..MAX_SERVICES {
            n.pin(&format!("s{i}"), 1);
        }
        let (name, id) = n.pin("one-more", 1);
        assert_eq!(&*name, OVERFLOW);
        assert_eq!(n.pin("and-another", 1).1, id);
        assert_eq!(n.services_len(), MAX_SERVICES + 1);
    }
}
