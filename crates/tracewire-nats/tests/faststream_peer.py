"""The FastStream peer of `crates/tracewire-nats/tests/faststream.rs`: FastStream 0.7.8 with its
`NatsTelemetryMiddleware`.

The chain, the line protocol and the OTel SDK setup are the shared ones of
`crates/tracewire-test/python/faststream_common.py`; SECOND reports {"headers": {...},
"body_hex": ".."}, the headers exactly as nats-py parsed them off the wire.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tracewire-test" / "python"))

import faststream_common as common  # noqa: E402
from faststream.nats import NatsBroker, NatsMessage  # noqa: E402
from faststream.nats.opentelemetry import NatsTelemetryMiddleware  # noqa: E402


async def main() -> None:
    args = common.arguments("--nats")
    chain = common.Chain(args)
    broker = NatsBroker(
        args.nats,
        middlewares=[NatsTelemetryMiddleware(tracer_provider=chain.provider)],
    )

    @broker.subscriber(args.second)
    async def on_second(msg: NatsMessage) -> None:
        # The headers exactly as nats-py parsed them off the wire (FastStream reads these).
        await chain.second(
            {"headers": dict(msg.raw_message.headers or {}), "body_hex": msg.body.hex()},
            lambda: broker.publish(msg.body, args.third, correlation_id=msg.correlation_id),
        )

    await chain.run(
        broker, lambda: broker.publish(b"order-1", args.first, correlation_id="order-1")
    )


if __name__ == "__main__":
    common.main(main)
