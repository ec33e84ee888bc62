"""Decodes OTLP trace request bodies with the official Python `opentelemetry-proto` classes
and prints a canonical JSON summary that tracewire's Rust test compares with what it sent.

usage: decode_otlp.py (protobuf|json) FILE
"""
import base64
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def hex_ids_to_base64(obj):
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                out[k] = base64.b64encode(bytes.fromhex(v)).decode() if v else ""
            else:
                out[k] = hex_ids_to_base64(v)
        return out
    if isinstance(obj, list):
        return [hex_ids_to_base64(x) for x in obj]
    return obj


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return ["array", [value(x) for x in v.array_value.values]]
    return [kind, getattr(v, kind)]


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def main():
    mode, path = sys.argv[1], sys.argv[2]
    req = ExportTraceServiceRequest()
    data = open(path, "rb").read()
    if mode == "protobuf":
        req.ParseFromString(data)
    else:
        json_format.Parse(json.dumps(hex_ids_to_base64(json.loads(data))), req)
    out = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append({
                    "resource": attrs(rs.resource.attributes),
                    "scope": [ss.scope.name, ss.scope.version],
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "trace_state": s.trace_state,
                    "flags": s.flags,
                    "name": s.name,
                    "kind": s.kind,
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "events": [[e.name, e.time_unix_nano, attrs(e.attributes)] for e in s.events],
                    "links": [[l.trace_id.hex(), l.span_id.hex(), l.flags] for l in s.links],
                    "status": [s.status.code, s.status.message],
                })
    print(json.dumps(out, sort_keys=True))


main()
