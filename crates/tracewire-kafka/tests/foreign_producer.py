"""A foreign producer for `crates/tracewire-kafka/tests/kafka.rs`: sends one record whose headers
a well-behaved client never writes — a header *name* that is not UTF-8 (rdkafka 0.39 panics
when it reads one), a garbage `traceparent` and a null value — with aiokafka's pure-Python
record builder (its C builder refuses such a name).

    python foreign_producer.py --kafka HOST:PORT --topic TOPIC   ->  stdout: SENT <offset>
"""

import argparse
import asyncio
import os

# Before aiokafka is imported: its pure-Python record builder encodes names with .encode().
os.environ["AIOKAFKA_NO_EXTENSIONS"] = "1"

from aiokafka import AIOKafkaProducer  # noqa: E402


class RawName(str):
    """A header name whose bytes on the wire are not UTF-8."""

    def encode(self, *args, **kwargs) -> bytes:
        return b"\xff\xfebad"


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kafka", required=True)
    p.add_argument("--topic", required=True)
    args = p.parse_args()
    producer = AIOKafkaProducer(bootstrap_servers=args.kafka)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            args.topic,
            b"payload",
            headers=[
                (RawName("x"), b"not-utf8-name"),
                ("traceparent", b"00-zzzz-01"),
                ("x-null", None),
                ("x-app", b"kept"),
            ],
        )
    finally:
        await producer.stop()
    print("SENT", sent.offset, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
