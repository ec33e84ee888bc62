//! The resource: who produced the spans (`service.name`, SDK, host, process).

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;

/// `service.name`
pub const SERVICE_NAME: &str = "service.name";
/// `service.version`
pub const SERVICE_VERSION: &str = "service.version";
/// `service.namespace`
pub const SERVICE_NAMESPACE: &str = "service.namespace";
/// `telemetry.sdk.name`
pub const TELEMETRY_SDK_NAME: &str = "telemetry.sdk.name";
/// `telemetry.sdk.language`
pub const TELEMETRY_SDK_LANGUAGE: &str = "telemetry.sdk.language";
/// `telemetry.sdk.version`
pub const TELEMETRY_SDK_VERSION: &str = "telemetry.sdk.version";
/// `host.name`
pub const HOST_NAME: &str = "host.name";
/// `os.type`
pub const OS_TYPE: &str = "os.type";
/// `process.pid`
pub const PROCESS_PID: &str = "process.pid";
/// `process.executable.name`
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
/// `process.command_args`
pub const PROCESS_COMMAND_ARGS: &str = "process.command_args";
/// `service.instance.id`
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// `process.runtime.name`
pub const PROCESS_RUNTIME_NAME: &str = "process.runtime.name";
/// `process.runtime.version`
pub const PROCESS_RUNTIME_VERSION: &str = "process.runtime.version";
/// `process.runtime.description`
pub const PROCESS_RUNTIME_DESCRIPTION: &str = "process.runtime.description";
/// `host.arch`
pub const HOST_ARCH: &str = "host.arch";

/// A resource value.
#[derive(Clone, Debug, PartialEq)]
pub enum ResourceValue {
    /// A string.
    String(String),
    /// An integer.
    Int(i64),
    /// A list of strings.
    StringArray(Vec<String>),
}

impl From<&str> for ResourceValue {
    fn from(s: &str) -> Self {
        ResourceValue::String(s.to_owned())
    }
}

impl From<String> for ResourceValue {
    fn from(s: String) -> Self {
        ResourceValue::String(s)
    }
}

impl From<i64> for ResourceValue {
    fn from(i: i64) -> Self {
        ResourceValue::Int(i)
    }
}

impl std::fmt::Display for ResourceValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceValue::String(s) => f.write_str(s),
            ResourceValue::Int(i) => write!(f, "{i}"),
            ResourceValue::StringArray(a) => write!(f, "{a:?}"),
        }
    }
}

/// An ordered set of resource attributes (a key appears once; later [`set`](Resource::set)
/// calls win).
///
/// ```
/// use tracewire_export::Resource;
///
/// let r = Resource::detect("checkout").with("deployment.environment.name", "prod");
/// assert_eq!(r.get("service.name").unwrap().to_string(), "checkout");
/// assert_eq!(r.get("telemetry.sdk.name").unwrap().to_string(), "tracewire");
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    attrs: Vec<(String, ResourceValue)>,
}

impl Resource {
    /// An empty resource.
    pub fn empty() -> Self {
        Resource::default()
    }

    /// `service.name` = `service_name` plus what can be detected: `service.instance.id` (a
    /// random UUID, one per process), `telemetry.sdk.*`, `host.name`, `host.arch`, `os.type`,
    /// `process.pid`, `process.executable.name`, `process.runtime.*` (the compiler that built
    /// tracewire). `process.command_args` is opt-in ([`with_command_args`]: arguments may
    /// hold secrets; `process.executable.name` satisfies the conventions' requirement).
    ///
    /// [`with_command_args`]: Resource::with_command_args
    pub fn detect(service_name: impl Into<String>) -> Self {
        let mut r = Resource::empty()
            .with(SERVICE_NAME, service_name.into())
            .with(SERVICE_INSTANCE_ID, instance_id())
            .with(TELEMETRY_SDK_NAME, "tracewire")
            .with(TELEMETRY_SDK_LANGUAGE, "rust")
            .with(TELEMETRY_SDK_VERSION, env!("CARGO_PKG_VERSION"))
            .with(HOST_ARCH, host_arch())
            .with(OS_TYPE, os_type())
            .with(PROCESS_PID, i64::from(std::process::id()))
            .with(PROCESS_RUNTIME_NAME, "rustc");
        for (key, value) in [
            (PROCESS_RUNTIME_VERSION, env!("TRACEWIRE_RUSTC_VERSION")),
            (
                PROCESS_RUNTIME_DESCRIPTION,
                env!("TRACEWIRE_RUSTC_DESCRIPTION"),
            ),
        ] {
            if !value.is_empty() {
                r.set(key, value);
            }
        }
        if let Some(host) = host_name() {
            r.set(HOST_NAME, host);
        }
        if let Some(exe) = executable_name() {
            r.set(PROCESS_EXECUTABLE_NAME, exe);
        }
        r
    }

    /// The default service name: `unknown_service:<executable name>` (spec).
    pub fn default_service_name() -> String {
        match executable_name() {
            Some(exe) => format!("unknown_service:{exe}"),
            None => "unknown_service".to_owned(),
        }
    }

    /// Adds `process.command_args` (opt-in: arguments may hold secrets).
    pub fn with_command_args(self) -> Self {
        self.with(
            PROCESS_COMMAND_ARGS,
            ResourceValue::StringArray(std::env::args().collect()),
        )
    }

    /// Sets `key` (replacing any value), builder style.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<ResourceValue>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets `key`, replacing any value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<ResourceValue>) {
        let key = key.into();
        let value = value.into();
        match self.attrs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attrs.push((key, value)),
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&ResourceValue> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All attributes in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ResourceValue)> {
        self.attrs.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// `other`'s attributes override this one's.
    pub fn merge(mut self, other: &Resource) -> Self {
        for (k, v) in &other.attrs {
            self.set(k.clone(), v.clone());
        }
        self
    }

    /// The OTLP resource.
    pub fn to_proto(&self) -> ProtoResource {
        ProtoResource {
            attributes: self
                .attrs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    key_strindex: 0,
                    value: Some(AnyValue {
                        value: Some(match v {
                            ResourceValue::String(s) => Value::StringValue(s.clone()),
                            ResourceValue::Int(i) => Value::IntValue(*i),
                            ResourceValue::StringArray(a) => Value::ArrayValue(ArrayValue {
                                values: a
                                    .iter()
                                    .map(|s| AnyValue {
                                        value: Some(Value::StringValue(s.clone())),
                                    })
                                    .collect(),
                            }),
                        }),
                    }),
                })
                .collect(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        }
    }
}

/// This process's `service.instance.id`: a random (version 4) UUID, made once.
fn instance_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let (a, b) = (fastrand::u64(..), fastrand::u64(..));
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    })
    .clone()
}

/// `host.arch` in the conventions' words.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

fn os_type() -> &'static str {
    match std::env::consts::OS {
        "macos" | "ios" => "darwin",
        other => other,
    }
}

fn executable_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

fn host_name() -> Option<String> {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned());
    from_file
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn merge_overrides_and_keeps_order() {
        let a = Resource::empty().with("a", "1").with("b", "2");
        let b = Resource::empty().with("b", "3").with("c", 4);
        let m = a.merge(&b);
        let keys: Vec<_> = m.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(m.get("b"), Some(&ResourceValue::String("3".into())));
        assert_eq!(m.to_proto().attributes.len(), 3);
    }

    #[test]
    fn detect_fills_process_attributes() {
        let r = Resource::detect("svc");
        assert_eq!(
            r.get(PROCESS_PID),
            Some(&ResourceValue::Int(i64::from(std::process::id())))
        );
        assert!(r.get(PROCESS_EXECUTABLE_NAME).is_some());
        assert!(r.get(PROCESS_COMMAND_ARGS).is_none());
        assert!(Resource::default_service_name().starts_with("unknown_service:"));
        // One instance id per process, a v4 UUID.
        let id = r.get(SERVICE_INSTANCE_ID).unwrap().to_string();
        assert_eq!(
            id,
            Resource::detect("other")
                .get(SERVICE_INSTANCE_ID)
                .unwrap()
                .to_string()
        );
        assert_eq!((id.len(), &id[14..15]), (36, "4"), "{id}");
        assert_eq!(r.get(PROCESS_RUNTIME_NAME).unwrap().to_string(), "rustc");
        let version = r.get(PROCESS_RUNTIME_VERSION).unwrap().to_string();
        assert!(version.starts_with("1."), "{version}");
        assert!(r.get(HOST_ARCH).is_some());
    }
}
