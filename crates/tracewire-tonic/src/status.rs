//! Reading a gRPC status off the wire, and which statuses are span errors on which side.

use std::time::Duration;

use http::HeaderMap;
use http::header::HeaderName;

/// `grpc-status`: the numeric status, in the trailers (or the headers of a trailers-only
/// response).
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`: the percent-encoded status message.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`: the deadline the client gave the call (`<digits><H|M|S|m|u|n>`).
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The canonical names of the gRPC status codes 0..=16, as in the gRPC spec and the
/// `rpc.response.status_code` convention.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// gRPC status codes used by the layers themselves.
pub(crate) const OK: u16 = 0;
pub(crate) const CANCELLED: u16 = 1;
pub(crate) const UNKNOWN: u16 = 2;
pub(crate) const DEADLINE_EXCEEDED: u16 = 4;

/// The canonical name of a status code (`"NOT_FOUND"`); codes outside 0..=16 read as
/// `"UNKNOWN"`, as gRPC clients treat them.
pub fn code_name(code: u16) -> &'static str {
    CODE_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or(CODE_NAMES[usize::from(UNKNOWN)])
}

/// Which end of the call a span describes: the error rule differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The server: only UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
    /// DATA_LOSS are errors (the others are the client's problem, e.g. NOT_FOUND).
    Server,
    /// The client: every status but OK is an error.
    Client,
}

impl Side {
    /// True when `code` marks the span as an error on this side (OpenTelemetry gRPC
    /// conventions).
    pub fn is_error(self, code: u16) -> bool {
        match self {
            Side::Client => code != OK,
            Side::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15),
        }
    }
}

/// A status read from `grpc-status` / `grpc-message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WireStatus {
    pub(crate) code: u16,
    pub(crate) message: Option<String>,
}

/// The status in `headers` (trailers, or the headers of a trailers-only response), if any.
/// A `grpc-status` that is not a number reads as UNKNOWN, as gRPC clients do.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<WireStatus> {
    let raw = headers.get(GRPC_STATUS)?;
    let code = parse_code(raw.as_bytes()).unwrap_or(UNKNOWN);
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|m| {
            percent_encoding::percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|m| !m.is_empty());
    Some(WireStatus { code, message })
}

fn parse_code(bytes: &[u8]) -> Option<u16> {
    if bytes.is_empty() || bytes.len() > 5 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    bytes
        .iter()
        .try_fold(0u32, |n, b| Some(n * 10 + u32::from(b - b'0')))
        .and_then(|n| u16::try_from(n).ok())
}

/// The status of a `tonic::Status` error.
pub(crate) fn from_tonic(status: &tonic::Status) -> WireStatus {
    WireStatus {
        code: u16::try_from(status.code() as i32).unwrap_or(UNKNOWN),
        message: Some(status.message().to_owned()).filter(|m| !m.is_empty()),
    }
}

/// The status gRPC clients infer from a non-200 HTTP response without `grpc-status`
/// (gRPC's `http-grpc-status-mapping.md`).
pub(crate) fn from_http_status(status: http::StatusCode) -> WireStatus {
    let code = match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => UNKNOWN,
    };
    WireStatus {
        code,
        message: Some(format!(
            "no grpc-status; mapped from HTTP status {}",
            status.as_u16()
        )),
    }
}

/// Parses a `grpc-timeout` value: 1 to 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_rules_per_side() {
        let server: Vec<_> = (0..=16).filter(|&c| Side::Server.is_error(c)).collect();
        assert_eq!(server, [2, 4, 12, 13, 14, 15]);
        let client: Vec<_> = (0..=16).filter(|&c| Side::Client.is_error(c)).collect();
        assert_eq!(client, (1..=16).collect::<Vec<_>>());
    }

    #[test]
    fn names() {
        assert_eq!(code_name(0), "OK");
        assert_eq!(code_name(5), "NOT_FOUND");
        assert_eq!(code_name(16), "UNAUTHENTICATED");
        assert_eq!(code_name(99), "UNKNOWN");
        // Same table as tonic's enum, in the same order.
        for c in 0..=16 {
            let tonic = format!("{:?}", tonic::Code::from_i32(i32::from(c)));
            assert_eq!(
                code_name(c).replace('_', "").to_lowercase(),
                tonic.to_lowercase()
            );
        }
    }

    #[test]
    fn status_from_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), None);
        h.insert(GRPC_STATUS, "5".parse().unwrap());
        h.insert(
            GRPC_MESSAGE,
            "no%20such%20user%3A%20%C3%A9".parse().unwrap(),
        );
        assert_eq!(
            from_headers(&h),
            Some(WireStatus {
                code: 5,
                message: Some("no such user: é".into())
            })
        );
        h.insert(GRPC_STATUS, "x".parse().unwrap());
        h.remove(GRPC_MESSAGE);
        assert_eq!(from_headers(&h).unwrap().code, UNKNOWN);
        h.insert(GRPC_STATUS, "99999999".parse().unwrap());
        assert_eq!(from_headers(&h).unwrap().code, UNKNOWN);
    }

    #[test]
    fn http_status_mapping() {
        assert_eq!(from_http_status(http::StatusCode::NOT_FOUND).code, 12);
        assert_eq!(from_http_status(http::StatusCode::BAD_GATEWAY).code, 14);
        assert_eq!(from_http_status(http::StatusCode::IM_A_TEAPOT).code, 2);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        assert_eq!(
            parse_timeout(b"99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout(b"123456789m"), None);
        assert_eq!(parse_timeout(b"m"), None);
        assert_eq!(parse_timeout(b"10x"), None);
        assert_eq!(parse_timeout(b""), None);
    }
}
