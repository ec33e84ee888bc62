"""The FastStream peer of `crates/tracewire-lapin/tests/faststream.rs`: FastStream 0.7.8
(aio-pika) with its `RabbitTelemetryMiddleware`, one routing mode per run
(`--mode default|exchange`): through the default exchange (routing key = queue), or through
the direct exchange `--exchange` (declared by the Rust side; each queue bound under its own
name as the routing key). FIRST and THIRD are declared by the Rust side; SECOND by FastStream,
auto-delete.

The chain, the line protocol and the OTel SDK setup are the shared ones of
`crates/tracewire-test/python/faststream_common.py`; READY once SECOND is consumed; SECOND
reports {"headers": {...}, "body_hex": "..", "correlation_id": ".."}.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tracewire-test" / "python"))

import faststream_common as common  # noqa: E402
from faststream.rabbit import (  # noqa: E402
    RabbitBroker,
    RabbitExchange,
    RabbitMessage,
    RabbitQueue,
)
from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware  # noqa: E402


def text(value: object) -> object:
    """A header value as JSON can hold it (aio-pika gives bytes for byte arrays)."""
    if isinstance(value, bytes):
        return {"bytes_hex": value.hex()}
    return value


def routing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", required=True, choices=["default", "exchange"])
    p.add_argument("--exchange", default="")


async def main() -> None:
    args = common.arguments("--amqp", extra=routing)
    chain = common.Chain(args)
    broker = RabbitBroker(
        args.amqp,
        middlewares=[RabbitTelemetryMiddleware(tracer_provider=chain.provider)],
    )
    # The exchange is the Rust side's (declared there): FastStream only binds to it.
    exchange = (
        RabbitExchange(args.exchange, declare=False) if args.mode == "exchange" else None
    )

    @broker.subscriber(RabbitQueue(args.second, auto_delete=True), exchange)
    async def on_second(msg: RabbitMessage) -> None:
        # The AMQP headers as FastStream's own parser read them off the wire.
        await chain.second(
            {
                "headers": {k: text(v) for k, v in msg.headers.items()},
                "body_hex": msg.body.hex(),
                "correlation_id": msg.correlation_id,
            },
            lambda: broker.publish(
                msg.body, queue=args.third, exchange=exchange, correlation_id=msg.correlation_id
            ),
        )

    await chain.run(
        broker,
        lambda: broker.publish(
            b"order-1", queue=args.first, exchange=exchange, correlation_id="order-1"
        ),
    )


if __name__ == "__main__":
    common.main(main)
