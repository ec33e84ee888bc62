"""The independent implementation for tracewire's differential tests.

Drives the OpenTelemetry Python propagators (opentelemetry-sdk, opentelemetry-propagator-b3,
opentelemetry-propagator-jaeger, pinned in scripts/requirements-interop.txt) on requests that
crates/tracewire-core/tests/differential.rs writes to stdin as one JSON document:

    {"ops": [op, ...]}

and answers with one JSON document on stdout, {"results": [result, ...]}, one result per op:

    {"op": "extract", "format": F, "headers": [[name, value], ...]}
        -> {"context": null | {"trace_id": hex32, "span_id": hex16, "flags": int,
                               "sampled": bool, "tracestate": str},
            "baggage": [[key, value], ...]}
    {"op": "inject", "format": F, "context": {"trace_id": hex32, "span_id": hex16,
                                                "flags": int, "tracestate": str,
                                                "baggage": [[key, value], ...]}}
        -> {"headers": [[name, value], ...]}
    {"op": "ratio", "ratio": float, "trace_ids": [hex32, ...]}
        -> {"sampled": [bool, ...]}

F is one of tracecontext, baggage, b3, b3multi, jaeger. Header lookups are case-insensitive and
return every value of a repeated header in order, like an HTTP header map.
"""

import json
import sys

from opentelemetry import baggage as otel_baggage
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {
    "tracecontext": TraceContextTextMapPropagator(),
    "baggage": W3CBaggagePropagator(),
    "b3": B3SingleFormat(),
    "b3multi": B3MultiFormat(),
    "jaeger": JaegerPropagator(),
}


class PairsGetter(Getter):
    """A list of (name, value) pairs read like an HTTP header map."""

    def get(self, carrier, key):
        values = [v for (k, v) in carrier if k.lower() == key.lower()]
        return values or None

    def keys(self, carrier):
        seen = []
        for k, _ in carrier:
            if k not in seen:
                seen.append(k)
        return seen


class PairsSetter(Setter):
    def set(self, carrier, key, value):
        carrier[:] = [(k, v) for (k, v) in carrier if k.lower() != key.lower()]
        carrier.append((key, value))


GETTER = PairsGetter()
SETTER = PairsSetter()


def context_json(ctx):
    sc = trace.get_current_span(ctx).get_span_context()
    if not sc.is_valid:
        return None
    return {
        "trace_id": f"{sc.trace_id:032x}",
        "span_id": f"{sc.span_id:016x}",
        "flags": int(sc.trace_flags),
        "sampled": sc.trace_flags.sampled,
        "tracestate": sc.trace_state.to_header() if sc.trace_state is not None else "",
    }


def extract(op):
    carrier = [(k, v) for k, v in op["headers"]]
    ctx = PROPAGATORS[op["format"]].extract(carrier, context=Context(), getter=GETTER)
    return {
        "context": context_json(ctx),
        "baggage": [[k, str(v)] for k, v in otel_baggage.get_all(ctx).items()],
    }


def inject(op):
    c = op["context"]
    ctx = Context()
    if c.get("trace_id"):
        state = trace.TraceState.from_header([c["tracestate"]]) if c.get("tracestate") else None
        sc = trace.SpanContext(
            trace_id=int(c["trace_id"], 16),
            span_id=int(c["span_id"], 16),
            is_remote=False,
            trace_flags=trace.TraceFlags(c["flags"]),
            trace_state=state,
        )
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(sc), ctx)
    for k, v in c.get("baggage", []):
        ctx = otel_baggage.set_baggage(k, v, context=ctx)
    carrier = []
    PROPAGATORS[op["format"]].inject(carrier, context=ctx, setter=SETTER)
    return {"headers": [[k, v] for k, v in carrier]}


def ratio(op):
    sampler = TraceIdRatioBased(op["ratio"])
    out = []
    for tid in op["trace_ids"]:
        r = sampler.should_sample(None, int(tid, 16), "span")
        out.append(r.decision.is_sampled())
    return {"sampled": out}


OPS = {"extract": extract, "inject": inject, "ratio": ratio}


def main():
    request = json.load(sys.stdin)
    results = []
    for op in request["ops"]:
        try:
            results.append(OPS[op["op"]](op))
        except Exception as e:  # an exception is a result too: the Rust side reports it
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
