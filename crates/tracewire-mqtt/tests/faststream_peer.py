"""The FastStream peer of `crates/tracewire-mqtt/tests/faststream.rs`: FastStream 0.7.8
(`MQTTBroker` on the zmqtt client, **MQTT 5.0**: its headers are MQTT 5 user properties, its
correlation id the `correlation_data` property; over 3.1.1 it sends neither) with its
`MQTTTelemetryMiddleware`.

The chain, the line protocol and the OTel SDK setup are the shared ones of
`crates/tracewire-test/python/faststream_common.py`; SECOND reports {"headers": {...},
"correlation_id": "..", "body_hex": ".."}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tracewire-test" / "python"))

import faststream_common as common  # noqa: E402
from faststream.mqtt import MQTTBroker, MQTTMessage, QoS  # noqa: E402
from faststream.mqtt.opentelemetry import MQTTTelemetryMiddleware  # noqa: E402


async def main() -> None:
    args = common.arguments("--mqtt", help="mqtt://HOST:PORT")
    chain = common.Chain(args)
    # MQTT 5 (FastStream's default, spelled out): with version="3.1.1" FastStream refuses to
    # publish headers at all ("MQTT 3.1.1 does not support message headers"), so its
    # telemetry middleware cannot propagate anything.
    broker = MQTTBroker(
        args.mqtt,
        version="5.0",
        middlewares=[MQTTTelemetryMiddleware(tracer_provider=chain.provider)],
    )

    @broker.subscriber(args.second, qos=QoS.AT_LEAST_ONCE)
    async def on_second(msg: MQTTMessage) -> None:
        # The user properties as FastStream's parser read them (a dict: a repeated name keeps
        # its last value), its correlation id (from `correlation_data`), the body.
        await chain.second(
            {
                "headers": msg.headers,
                "correlation_id": msg.correlation_id,
                "body_hex": msg.body.hex(),
            },
            lambda: broker.publish(
                msg.body, args.third, qos=QoS.AT_LEAST_ONCE, correlation_id=msg.correlation_id
            ),
        )

    await chain.run(
        broker,
        lambda: broker.publish(
            b"order-1", args.first, qos=QoS.AT_LEAST_ONCE, correlation_id="order-1"
        ),
    )


if __name__ == "__main__":
    common.main(main)
