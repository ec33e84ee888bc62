"""The FastStream peer of `crates/tracewire-redis/tests/faststream.rs`: FastStream 0.7.8 with its
`RedisTelemetryMiddleware`, one Redis mode per run (`--mode pubsub|list|stream`): FIRST, SECOND
and THIRD are channels, lists or streams; a stream is read in consumer group `py`.

The chain, the line protocol and the OTel SDK setup are the shared ones of
`crates/tracewire-test/python/faststream_common.py`; READY once SECOND's channel is subscribed
(the stream group created); SECOND reports {"headers": {...}, "body_hex": ".."}, the envelope
as FastStream's own parser read it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tracewire-test" / "python"))

import faststream_common as common  # noqa: E402
from faststream.redis import RedisBroker, RedisMessage, StreamSub  # noqa: E402
from faststream.redis.opentelemetry import RedisTelemetryMiddleware  # noqa: E402


async def main() -> None:
    args = common.arguments(
        "--redis",
        extra=lambda p: p.add_argument(
            "--mode", required=True, choices=["pubsub", "list", "stream"]
        ),
    )
    chain = common.Chain(args)
    broker = RedisBroker(
        args.redis,
        middlewares=[RedisTelemetryMiddleware(tracer_provider=chain.provider)],
    )
    # The keyword that names a destination of this mode, in `subscriber` and `publish`.
    kw = {"pubsub": "channel", "list": "list", "stream": "stream"}[args.mode]
    source = (
        StreamSub(args.second, group="py", consumer="py-1")
        if args.mode == "stream"
        else args.second
    )

    @broker.subscriber(**{kw: source})
    async def on_second(msg: RedisMessage) -> None:
        # The envelope's headers as FastStream's own parser read them off the wire.
        await chain.second(
            {"headers": msg.headers, "body_hex": msg.body.hex()},
            lambda: broker.publish(
                msg.body, correlation_id=msg.correlation_id, **{kw: args.third}
            ),
        )

    await chain.run(
        broker,
        lambda: broker.publish(b"order-1", correlation_id="order-1", **{kw: args.first}),
    )


if __name__ == "__main__":
    common.main(main)
