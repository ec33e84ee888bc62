"""FastStream's own Redis envelope code, as an oracle for `tests/envelope.rs`.

Reads one JSON document on stdin, writes one on stdout; every frame in hex.

    {"encode": [{"headers": [[k, v], ...], "correlation_id": "c", "body_hex": "..",
                 "body_kind": "bytes" | "text"}, ...],
     "encode_json": [... the same ...],
     "decode": ["<frame hex>", ...]}
 -> {"encode": ["<frame hex>", ...], "encode_json": ["<frame hex>", ...],
     "decode": [{"body_hex": "..", "headers": [[k, v], ...]}, ...]}

- `encode`: `BinaryMessageFormatV1.encode`, what FastStream 0.7.8 writes (its default).
- `encode_json`: the JSON envelope FastStream wrote before 0.6 (`JSONMessageFormat`, removed
  since): `MessageFormat.build` then `dump_json({"data": data, "headers": headers})`, with
  FastStream's own `build` and `dump_json` (0.7.8 still reads the format but has no writer).
- `decode`: `BinaryMessageFormatV1.parse`, what FastStream reads (binary, JSON, or raw).
"""

import asyncio
import json
import sys

from faststream._internal._compat import dump_json
from faststream.redis.parser import BinaryMessageFormatV1


def message(case):
    body = bytes.fromhex(case["body_hex"])
    return body.decode() if case.get("body_kind") == "text" else body


async def main() -> None:
    req = json.load(sys.stdin)
    out = {"encode": [], "encode_json": [], "decode": []}
    for case in req.get("encode", []):
        frame = await BinaryMessageFormatV1.encode(
            message=message(case),
            reply_to=None,
            headers=dict(case["headers"]),
            correlation_id=case["correlation_id"],
        )
        out["encode"].append(frame.hex())
    for case in req.get("encode_json", []):
        built = await BinaryMessageFormatV1.build(
            message=message(case),
            reply_to=None,
            headers=dict(case["headers"]),
            correlation_id=case["correlation_id"],
        )
        out["encode_json"].append(dump_json({"data": built.data, "headers": built.headers}).hex())
    for frame in req.get("decode", []):
        body, headers = BinaryMessageFormatV1.parse(bytes.fromhex(frame))
        out["decode"].append(
            {"body_hex": body.hex(), "headers": [[k, str(v)] for k, v in headers.items()]}
        )
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
