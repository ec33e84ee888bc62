"""The FastStream peer of `crates/tracewire-mqtt/tests/faststream.rs`.

FastStream 0.7.8 (`MQTTBroker` on the zmqtt client, **MQTT 5.0**: its headers are MQTT 5 user
properties, its correlation id the `correlation_data` property; over 3.1.1 it sends neither)
with its `MQTTTelemetryMiddleware`, run without the FastStream CLI, exporting its spans over
OTLP/HTTP (service.name `py-faststream`) to the receiver the Rust test started.

    py publishes FIRST  ->  rs handles FIRST, publishes SECOND
                        ->  py handles SECOND, publishes THIRD  ->  rs handles THIRD

Protocol with the test, one line each way, so nothing depends on timing:

    stdout  READY            subscribed to SECOND
    stdin   publish          publish FIRST (the Rust subscriptions are in place)
    stdout  SECOND {...}     what FastStream read on SECOND: {"headers": {...},
                             "correlation_id": "..", "body_hex": ".."}
    stdin   stop             the Rust side has handled THIRD
    stdout  FLUSHED [...]    every span ended and exported (provider.shutdown())

Any wait longer than --timeout seconds exits non-zero with the reason on stderr.
"""

import argparse
import asyncio
import json
import sys
import time

from faststream.mqtt import MQTTBroker, MQTTMessage, QoS
from faststream.mqtt.opentelemetry import MQTTTelemetryMiddleware
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

SERVICE = "py-faststream"


def emit(*parts: str) -> None:
    print(*parts, flush=True)


def fail(why: str) -> None:
    print(f"faststream_peer: {why}", file=sys.stderr, flush=True)
    sys.exit(1)


class Ended(SpanProcessor):
    """Names of the spans that have ended: the script waits for the process span of SECOND to
    end before it flushes, instead of hoping it has."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.names.append(span.name)


async def stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def expect_line(reader: asyncio.StreamReader, want: str, timeout: float) -> None:
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        fail(f"no {want!r} on stdin within {timeout} s")
    if line.decode().strip() != want:
        fail(f"expected {want!r} on stdin, got {line!r}")


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mqtt", required=True, help="mqtt://HOST:PORT")
    p.add_argument("--otlp", required=True, help="http://HOST:PORT/v1/traces")
    p.add_argument("--first", required=True)
    p.add_argument("--second", required=True)
    p.add_argument("--third", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()

    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp)))
    ended = Ended()
    provider.add_span_processor(ended)

    # MQTT 5 (FastStream's default, spelled out): with version="3.1.1" FastStream refuses to
    # publish headers at all ("MQTT 3.1.1 does not support message headers"), so its
    # telemetry middleware cannot propagate anything.
    broker = MQTTBroker(
        args.mqtt,
        version="5.0",
        middlewares=[MQTTTelemetryMiddleware(tracer_provider=provider)],
    )
    handled = asyncio.Event()

    @broker.subscriber(args.second, qos=QoS.AT_LEAST_ONCE)
    async def on_second(msg: MQTTMessage) -> None:
        # The user properties as FastStream's parser read them (a dict: a repeated name keeps
        # its last value), its correlation id (from `correlation_data`), the body.
        emit(
            "SECOND",
            json.dumps(
                {
                    "headers": msg.headers,
                    "correlation_id": msg.correlation_id,
                    "body_hex": msg.body.hex(),
                }
            ),
        )
        # FastStream's "path A": a fresh publish from inside the handler. Its `THIRD create`
        # span is the child of this handler's `SECOND process` span, and THIRD carries the
        # create span's context: the chain continues hop by hop. (Returning the body from a
        # handler decorated with `@broker.publisher(...)` would take "path B": THIRD would
        # carry the context that came in on SECOND — FastStream's "flattening", every hop's
        # process span under the first producer.)
        await broker.publish(
            msg.body, args.third, qos=QoS.AT_LEAST_ONCE, correlation_id=msg.correlation_id
        )
        handled.set()

    async with broker:
        await broker.start()
        reader = await stdin_reader()
        emit("READY")
        await expect_line(reader, "publish", args.timeout)
        # Outside any handler: `FIRST create` is the root of the trace, `FIRST publish` its
        # child, and FIRST carries the create span's context.
        await broker.publish(
            b"order-1", args.first, qos=QoS.AT_LEAST_ONCE, correlation_id="order-1"
        )
        try:
            await asyncio.wait_for(handled.wait(), args.timeout)
        except asyncio.TimeoutError:
            fail(f"{args.second} not handled within {args.timeout} s")
        await expect_line(reader, "stop", args.timeout)
        # FastStream ends the process span after the handler returns (after_processed).
        deadline = time.monotonic() + args.timeout
        while f"{args.second} process" not in ended.names:
            if time.monotonic() > deadline:
                fail(f"the process span of {args.second} never ended: {ended.names}")
            await asyncio.sleep(0.01)
    # Flushes the BatchSpanProcessor (an OTLP/HTTP request per batch, synchronously).
    provider.shutdown()
    emit("FLUSHED", json.dumps(ended.names))


if __name__ == "__main__":
    asyncio.run(main())
