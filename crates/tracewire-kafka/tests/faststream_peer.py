"""The FastStream peer of `crates/tracewire-kafka/tests/faststream.rs`: FastStream 0.7.8
(aiokafka) with its `KafkaTelemetryMiddleware`. FIRST, SECOND, THIRD are topics the test
created; SECOND is read in consumer group `py`, from the earliest offset.

The chain, the line protocol and the OTel SDK setup are the shared ones of
`crates/tracewire-test/python/faststream_common.py`; SECOND reports {"headers": {...},
"body_hex": "..", "key_hex": ".."}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tracewire-test" / "python"))

import faststream_common as common  # noqa: E402
from faststream.kafka import KafkaBroker, KafkaMessage  # noqa: E402
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware  # noqa: E402


async def main() -> None:
    args = common.arguments("--kafka", help="bootstrap servers, HOST:PORT")
    chain = common.Chain(args)
    broker = KafkaBroker(
        args.kafka,
        middlewares=[KafkaTelemetryMiddleware(tracer_provider=chain.provider)],
    )

    @broker.subscriber(args.second, group_id="py", auto_offset_reset="earliest")
    async def on_second(body: bytes, msg: KafkaMessage) -> None:
        # The headers as FastStream's own parser read them off the wire (values decoded as
        # UTF-8; a name that appears twice keeps its last value), and the record's key.
        raw = msg.raw_message
        await chain.second(
            {
                "headers": msg.headers,
                "body_hex": msg.body.hex(),
                "key_hex": (raw.key or b"").hex(),
            },
            lambda: broker.publish(
                msg.body, topic=args.third, key=raw.key, correlation_id=msg.correlation_id
            ),
        )

    await chain.run(
        broker,
        lambda: broker.publish(
            b"order-1", topic=args.first, key=b"order", correlation_id="order-1"
        ),
    )


if __name__ == "__main__":
    common.main(main)
