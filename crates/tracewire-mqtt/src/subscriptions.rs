//! The client's subscriptions, and **the rule that says which one a message was delivered
//! for** — what names its process span.
//!
//! An MQTT client may hold overlapping subscriptions (`sensors/+/temp` and `sensors/#`); a
//! broker then sends a message once per matching subscription (Mosquitto does) or once for
//! all of them, and the topic alone cannot tell which. MQTT 5 can: a SUBSCRIBE may carry a
//! *subscription identifier*, which the broker puts on every PUBLISH it sends because of that
//! subscription. The traced [`Client`](crate::Client) gives each SUBSCRIBE an identifier of
//! its own (unless it has one, or the broker said it does not support them), and the rule is:
//!
//! 1. The subscriptions named by the message's identifiers, of those registered here, that
//!    match its topic; when none do (no identifier: the broker has none, or the subscription
//!    was made with the untraced client), every registered subscription that matches it.
//! 2. Of those, the **most specific** filter: compared level by level from the left, a literal
//!    level beats `+`, which beats `#` (`a/b/#` over `a/+/c`, `a/+` over `a/#`); on a tie, the
//!    earliest subscribed.
//! 3. Its filter is `messaging.destination.template` (and names the span) when it has a
//!    wildcard; a shared subscription `$share/{group}/{filter}` gives `{group}` as
//!    `messaging.consumer.group.name` and `{filter}` as the filter. No subscription matches:
//!    the span is named by the topic.
//!
//! Subscribing to a filter again replaces its entry, as the broker replaces the subscription
//! ([MQTT 5 §3.8.4]); unsubscribing removes it.
//!
//! [MQTT 5 §3.8.4]: https://docs.oasis-open.org/mqtt/mqtt/v5.0/os/mqtt-v5.0-os.html#_Toc3901169

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rumqttc::v5::mqttbytes::v5::ConnAck;

/// The largest subscription identifier (a variable byte integer, MQTT 5 §3.3.2.3.8).
pub(crate) const MAX_IDENTIFIER: usize = 268_435_455;

/// One subscription as the client made it.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The filter as subscribed (`$share/g/a/+` included).
    subscribed: String,
    /// Where the topic filter starts in `subscribed` (after `$share/{group}/`).
    filter_at: usize,
    /// The share name of a shared subscription.
    group: Option<(usize, usize)>,
    /// Its SUBSCRIBE's identifier.
    id: Option<usize>,
    /// The filter has a `+` or `#` level.
    wildcard: bool,
    /// The order it was made in (ties of the rule go to the earliest).
    seq: u64,
}

impl Subscription {
    fn new(subscribed: &str, id: Option<usize>, seq: u64) -> Self {
        let (group, filter_at) = match shared(subscribed) {
            Some((start, end)) => (Some((start, end)), end + 1),
            None => (None, 0),
        };
        let wildcard = has_wildcard(subscribed.get(filter_at..).unwrap_or_default());
        Subscription {
            subscribed: subscribed.to_owned(),
            filter_at,
            group,
            id,
            wildcard,
            seq,
        }
    }

    /// Whether `topic` matches the filter.
    fn matches(&self, topic: &str) -> bool {
        if self.wildcard {
            matches(self.filter(), topic)
        } else {
            self.filter() == topic
        }
    }

    /// The topic filter (without `$share/{group}/`).
    pub(crate) fn filter(&self) -> &str {
        self.subscribed.get(self.filter_at..).unwrap_or_default()
    }

    /// The filter when it has a wildcard: what names the spans of its messages.
    pub(crate) fn template(&self) -> Option<&str> {
        self.wildcard.then(|| self.filter())
    }

    /// The share name of a shared subscription.
    pub(crate) fn group(&self) -> Option<&str> {
        self.group.and_then(|(s, e)| self.subscribed.get(s..e))
    }
}

/// `$share/{group}/{filter}` → where `{group}` is (start, end); `None` for anything else
/// (an empty group or filter is not a shared subscription).
fn shared(subscribed: &str) -> Option<(usize, usize)> {
    let rest = subscribed.strip_prefix("$share/")?;
    let slash = rest.find('/')?;
    let start = "$share/".len();
    (slash > 0 && slash + 1 < rest.len()).then_some((start, start + slash))
}

/// The levels of a topic or filter (byte-wise: `/` is ASCII, and a level is compared whole).
fn levels(s: &str) -> impl Iterator<Item = &[u8]> {
    s.as_bytes().split(|b| *b == b'/')
}

/// True when `filter` has a `+` or `#` level.
fn has_wildcard(filter: &str) -> bool {
    levels(filter).any(|l| l == b"+" || l == b"#")
}

/// Whether `topic` matches `filter` (MQTT 5 §4.7): `+` matches one level (empty ones too),
/// `#` the rest, its parent level included (`a/#` matches `a`); topics that begin with `$`
/// are not matched by a filter that begins with a wildcard.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let (mut f, mut t) = (levels(filter), levels(topic));
    loop {
        match (f.next(), t.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The rank of one filter level: a literal 0, `+` 1, `#` 2.
fn rank(level: &[u8]) -> u8 {
    match level {
        b"+" => 1,
        b"#" => 2,
        _ => 0,
    }
}

/// `Less` when `a` is more specific than `b` (level by level: literal, then `+`, then `#`;
/// a filter that ends first — with no `#` — is the more specific).
pub(crate) fn specificity(a: &str, b: &str) -> CmpOrdering {
    let (mut x, mut y) = (levels(a), levels(b));
    loop {
        match (x.next(), y.next()) {
            (Some(l), Some(m)) => match rank(l).cmp(&rank(m)) {
                CmpOrdering::Equal => {}
                other => return other,
            },
            (None, None) => return CmpOrdering::Equal,
            (None, Some(_)) => return CmpOrdering::Less,
            (Some(_), None) => return CmpOrdering::Greater,
        }
    }
}

/// Whether the broker takes subscription identifiers: unknown until the first CONNACK.
const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;

/// The subscriptions of one client (and its clones and event loop).
#[derive(Debug)]
pub(crate) struct Subscriptions {
    list: RwLock<Vec<Arc<Subscription>>>,
    seq: AtomicUsize,
    next_id: AtomicUsize,
    /// The client's choice (`Client::subscription_identifiers`).
    assign: AtomicBool,
    /// The broker's (its CONNACK).
    broker: AtomicU8,
}

impl Default for Subscriptions {
    fn default() -> Self {
        Subscriptions {
            list: RwLock::new(Vec::new()),
            seq: AtomicUsize::new(0),
            next_id: AtomicUsize::new(1),
            assign: AtomicBool::new(true),
            broker: AtomicU8::new(UNKNOWN),
        }
    }
}

impl Subscriptions {
    fn read(&self) -> RwLockReadGuard<'_, Vec<Arc<Subscription>>> {
        self.list.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Arc<Subscription>>> {
        self.list.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Turns the automatic identifiers on or off.
    pub(crate) fn set_assign(&self, yes: bool) {
        self.assign.store(yes, Ordering::Relaxed);
    }

    /// Notes what a CONNACK says about subscription identifiers (absent: available).
    pub(crate) fn connected(&self, connack: &ConnAck) {
        self.identifiers_available(
            connack
                .properties
                .as_ref()
                .and_then(|p| p.subscription_identifiers_available),
        );
    }

    /// The CONNACK's `Subscription Identifiers Available` (absent: available).
    fn identifiers_available(&self, property: Option<u8>) {
        let available = property.is_none_or(|v| v != 0);
        let state = if available { AVAILABLE } else { UNAVAILABLE };
        self.broker.store(state, Ordering::Relaxed);
    }

    /// A fresh identifier for a SUBSCRIBE, unless they are off or the broker has none.
    pub(crate) fn next_identifier(&self) -> Option<usize> {
        if !self.assign.load(Ordering::Relaxed)
            || self.broker.load(Ordering::Relaxed) == UNAVAILABLE
        {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Wrapped past the largest identifier (after 268 million SUBSCRIBEs): start over.
        Some((id - 1) % MAX_IDENTIFIER + 1)
    }

    /// Registers `filters` subscribed in one SUBSCRIBE with identifier `id`, replacing the
    /// entries of the same filters.
    pub(crate) fn add<'f>(&self, filters: impl IntoIterator<Item = &'f str>, id: Option<usize>) {
        let mut list = self.write();
        for f in filters {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed) as u64;
            let sub = Arc::new(Subscription::new(f, id, seq));
            match list.iter_mut().find(|s| s.subscribed == f) {
                Some(entry) => *entry = sub,
                None => list.push(sub),
            }
        }
    }

    /// Forgets `filters`.
    pub(crate) fn remove<'f>(&self, filters: impl IntoIterator<Item = &'f str>) {
        let mut list = self.write();
        for f in filters {
            list.retain(|s| s.subscribed != f);
        }
    }

    /// The subscription a message on `topic` with subscription identifiers `ids` was
    /// delivered for, by the rule of this module.
    pub(crate) fn resolve(&self, topic: &str, ids: &[usize]) -> Option<Arc<Subscription>> {
        let list = self.read();
        let matching = |s: &&Arc<Subscription>| s.matches(topic);
        let by_id = best(
            list.iter()
                .filter(|s| s.id.is_some_and(|id| ids.contains(&id)))
                .filter(matching),
        );
        by_id
            .or_else(|| best(list.iter().filter(matching)))
            .cloned()
    }
}

/// The most specific of `subs`, the earliest on a tie.
fn best<'a>(subs: impl Iterator<Item = &'a Arc<Subscription>>) -> Option<&'a Arc<Subscription>> {
    subs.min_by(|a, b| specificity(a.filter(), b.filter()).then(a.seq.cmp(&b.seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_follows_the_spec() {
        for (filter, topic, yes) in [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "sport/tennis", true),
            ("sport/+/player1", "sport/tennis/player1", true),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("sport/+", "sport/tennis/x", false),
            ("sport/tennis", "sport/Tennis", false),
            ("#", "$SYS/broker", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/broker", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
        ] {
            assert_eq!(matches(filter, topic), yes, "{filter} ~ {topic}");
        }
    }

    #[test]
    fn the_most_specific_filter_wins() {
        let mut v = ["a/#", "#", "a/+", "a/b/#", "a/+/c", "a/b/c", "+/b/c"];
        v.sort_by(|a, b| specificity(a, b));
        // (`a/+` and `a/+/c` never match one topic: their order does not matter.)
        assert_eq!(v, ["a/b/c", "a/b/#", "a/+", "a/+/c", "a/#", "+/b/c", "#"]);
    }

    #[test]
    fn shared_subscriptions_split_into_group_and_filter() {
        let s = Subscription::new("$share/workers/orders/+", None, 0);
        assert_eq!(
            (s.group(), s.filter(), s.template()),
            (Some("workers"), "orders/+", Some("orders/+"))
        );
        let s = Subscription::new("$share/workers/orders", None, 0);
        assert_eq!((s.group(), s.template()), (Some("workers"), None));
        for odd in ["$share/", "$share//x", "$share/g", "$share/g/"] {
            let s = Subscription::new(odd, None, 0);
            assert_eq!((s.group(), s.filter()), (None, odd), "{odd}");
        }
    }

    #[test]
    fn identifiers_pick_the_subscription_then_specificity_then_order() {
        let subs = Subscriptions::default();
        subs.add(["s/#"], Some(1));
        subs.add(["s/+/temp", "s/k1/+"], Some(2));
        subs.add(["$share/g/s/+/temp"], Some(3));
        let filter = |ids: &[usize]| {
            let s = subs.resolve("s/k1/temp", ids).unwrap();
            (s.filter().to_owned(), s.group().map(str::to_owned))
        };
        assert_eq!(filter(&[1]), ("s/#".into(), None));
        assert_eq!(
            filter(&[2]),
            ("s/k1/+".into(), None),
            "one SUBSCRIBE, two filters"
        );
        assert_eq!(filter(&[3]), ("s/+/temp".into(), Some("g".into())));
        assert_eq!(filter(&[1, 3]), ("s/+/temp".into(), Some("g".into())));
        // No (known) identifier: the most specific of every matching subscription.
        assert_eq!(filter(&[]), ("s/k1/+".into(), None));
        assert_eq!(filter(&[99]), ("s/k1/+".into(), None));
        assert!(subs.resolve("other", &[1]).is_none());
        // Subscribing again replaces; unsubscribing removes.
        subs.add(["s/#"], Some(7));
        assert_eq!(filter(&[7]), ("s/#".into(), None));
        subs.remove(["s/k1/+", "s/+/temp"]);
        assert_eq!(filter(&[2]), ("s/+/temp".into(), Some("g".into())));
        // A tie (the plain and the shared twin): the earlier subscription.
        subs.add(["t/+"], None);
        subs.add(["$share/g/t/+"], None);
        assert_eq!(subs.resolve("t/1", &[]).unwrap().group(), None);
    }

    #[test]
    fn identifiers_stop_when_off_or_refused_and_wrap() {
        let subs = Subscriptions::default();
        assert_eq!(subs.next_identifier(), Some(1));
        subs.set_assign(false);
        assert_eq!(subs.next_identifier(), None);
        subs.set_assign(true);
        subs.next_id.store(MAX_IDENTIFIER, Ordering::Relaxed);
        assert_eq!(subs.next_identifier(), Some(MAX_IDENTIFIER));
        assert_eq!(subs.next_identifier(), Some(1));
        subs.connected(&ConnAck {
            session_present: false,
            code: rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success,
            properties: None,
        });
        assert!(subs.next_identifier().is_some(), "absent: available");
        subs.identifiers_available(Some(1));
        assert!(subs.next_identifier().is_some());
        subs.identifiers_available(Some(0));
        assert_eq!(subs.next_identifier(), None);
    }
}
