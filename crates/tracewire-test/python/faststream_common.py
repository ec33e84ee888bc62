"""What every broker's FastStream peer shares (`crates/tracewire-*/tests/faststream_peer.py`,
driven by `tracewire_test::faststream` from the Rust test next to it).

FastStream 0.7.8 with its broker's `*TelemetryMiddleware`, run without the FastStream CLI,
exporting its spans over OTLP/HTTP (service.name `py-faststream`) to the receiver the Rust test
started. The chain the test drives (FastStream's parts marked "py"):

    py publishes FIRST  ->  rs handles FIRST, sends SECOND
                        ->  py handles SECOND, publishes THIRD  ->  rs handles THIRD

Protocol with the test, one line each way, so nothing depends on timing:

    stdout  READY            subscribed to SECOND, connected
    stdin   publish          publish FIRST (the Rust consumers are ready)
    stdout  SECOND {...}     what FastStream read on SECOND: {"headers": {...}, "body_hex": "..",
                             and what else the broker's peer reports}
    stdin   stop             the Rust side has handled THIRD
    stdout  FLUSHED [...]    every span ended and exported (provider.shutdown()): their names

Any wait longer than --timeout seconds exits non-zero with the reason on stderr.

A peer script puts this file's folder on `sys.path` (relative to its own file) and keeps only
what is its broker's: the broker's URL argument and any of its own, the broker with its
middleware, the subscriber of SECOND (what it reports, how it publishes THIRD) and the publish of
FIRST:

    args = faststream_common.arguments("--nats")
    chain = faststream_common.Chain(args)
    broker = NatsBroker(
        args.nats, middlewares=[NatsTelemetryMiddleware(tracer_provider=chain.provider)]
    )

    @broker.subscriber(args.second)
    async def on_second(msg: NatsMessage) -> None:
        await chain.second(
            {"headers": ..., "body_hex": msg.body.hex()},
            lambda: broker.publish(msg.body, args.third, correlation_id=msg.correlation_id),
        )

    await chain.run(
        broker, lambda: broker.publish(b"order-1", args.first, correlation_id="order-1")
    )
"""

import argparse
import asyncio
import json
import sys
import time
from typing import Any, Awaitable, Callable

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


def arguments(
    broker: str,
    help: str | None = None,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The command line: the broker's URL (`broker`, e.g. `--nats`), `--otlp`, the three
    destinations, `--timeout`, and what `extra` adds."""
    p = argparse.ArgumentParser()
    p.add_argument(broker, required=True, help=help)
    p.add_argument("--otlp", required=True, help="http://HOST:PORT/v1/traces")
    if extra is not None:
        extra(p)
    p.add_argument("--first", required=True)
    p.add_argument("--second", required=True)
    p.add_argument("--third", required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    return p.parse_args()


class Chain:
    """FastStream's side of the chain: the OTel SDK (`provider`, for the broker's telemetry
    middleware), SECOND's handler (`second`) and the run (`run`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        self.provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=args.otlp))
        )
        self.ended = Ended()
        self.provider.add_span_processor(self.ended)
        self.handled = asyncio.Event()

    async def second(
        self, seen: dict[str, Any], publish_third: Callable[[], Awaitable[Any]]
    ) -> None:
        """The handler of SECOND: reports `seen` (what FastStream's own parser read off the
        wire), then publishes THIRD."""
        emit("SECOND", json.dumps(seen))
        # FastStream's "path A": a fresh publish from inside the handler. Its `THIRD create`
        # span is the child of this handler's `SECOND process` span, and THIRD carries the
        # create span's context: the chain continues hop by hop.
        #
        # Returning the body from a handler decorated with `@broker.publisher(THIRD)` would
        # take "path B" instead: no create span, and THIRD would carry the context that came
        # in on SECOND (the upstream creation context, re-sent verbatim: FastStream's
        # "flattening", every hop's process span hanging under the first producer). tracewire
        # never does that: what a handler publishes carries its own send span's context.
        await publish_third()
        self.handled.set()

    async def run(self, broker: Any, publish_first: Callable[[], Awaitable[Any]]) -> None:
        """Starts `broker`, says READY, publishes FIRST when told, waits for SECOND to be
        handled and for `stop`, then flushes every span and says FLUSHED."""
        args = self.args
        async with broker:
            await broker.start()
            reader = await stdin_reader()
            emit("READY")
            await expect_line(reader, "publish", args.timeout)
            # Outside any handler: `FIRST create` is the root of the trace, `FIRST publish` its
            # child, and FIRST carries the create span's context.
            await publish_first()
            try:
                await asyncio.wait_for(self.handled.wait(), args.timeout)
            except asyncio.TimeoutError:
                fail(f"{args.second} not handled within {args.timeout} s")
            await expect_line(reader, "stop", args.timeout)
            # FastStream ends the process span after the handler returns (after_processed).
            # (Its name is `{destination} process`, the destination as FastStream names it: for
            # RabbitMQ `{exchange or "default"}.{queue}`.)
            deadline = time.monotonic() + args.timeout
            while not any(n.endswith(f"{args.second} process") for n in self.ended.names):
                if time.monotonic() > deadline:
                    fail(f"the process span of {args.second} never ended: {self.ended.names}")
                await asyncio.sleep(0.01)
        # Flushes the BatchSpanProcessor (an OTLP/HTTP request per batch, synchronously).
        self.provider.shutdown()
        emit("FLUSHED", json.dumps(self.ended.names))


def main(peer: Callable[[], Awaitable[None]]) -> None:
    """Runs the peer's `main` coroutine function."""
    asyncio.run(peer())
