#!/usr/bin/env python3
"""Reads what tickhost wrote to Valkey with valkey-py, the way the seeds'
ValkeyStreamManager does (recent ticks with XREVRANGE, time travel with
XRANGE between two datetimes), and prints one JSON document.

    python3 examples/clients/valkey_reader.py --port 6379 --symbol WDOFUT \
        --start 2024-01-08T12:00:00+00:00 --end 2024-01-08T12:30:00+00:00

Credentials come from VALKEY_USERNAME / VALKEY_PASSWORD, as for tickhost.
"""
import argparse
import json
import os
from datetime import datetime

import valkey


class ValkeyStreamManager:
    """The seeds' manager (src/valkey_integration/valkey_stream_manager.py), read side."""

    def __init__(self, valkey_config=None, stream="realtime"):
        valkey_config = valkey_config or {}
        self.valkey = valkey.Valkey(
            host=valkey_config.get("host", "localhost"),
            port=valkey_config.get("port", 6379),
            username=valkey_config.get("username"),
            password=valkey_config.get("password"),
            decode_responses=False,  # bytes, as the seeds do, for speed
        )
        self.stream = stream

    def get_recent_ticks(self, symbol, count=100):
        stream_key = f"ticks:{symbol}:{self.stream}"
        ticks = self.valkey.xrevrange(stream_key, count=count)
        formatted_ticks = []
        for tick_id, fields in ticks:
            tick_data = {k.decode(): v.decode() for k, v in fields.items()}
            tick_data["stream_id"] = tick_id.decode()
            formatted_ticks.append(tick_data)
        return formatted_ticks

    def time_travel_query(self, symbol, start_time, end_time):
        stream_key = f"ticks:{symbol}:{self.stream}"
        start_id = f"{int(start_time.timestamp() * 1000)}-0"
        end_id = f"{int(end_time.timestamp() * 1000)}-0"
        return self.valkey.xrange(stream_key, start_id, end_id)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--symbol", required=True)
    p.add_argument("--stream", default="realtime", choices=["realtime", "historical"])
    p.add_argument("--recent", type=int, default=5)
    p.add_argument("--start", required=True, help="ISO datetime with offset")
    p.add_argument("--end", required=True, help="ISO datetime with offset")
    a = p.parse_args()
    m = ValkeyStreamManager(
        {
            "host": a.host,
            "port": a.port,
            "username": os.environ.get("VALKEY_USERNAME") or None,
            "password": os.environ.get("VALKEY_PASSWORD") or None,
        },
        stream=a.stream,
    )
    recent = m.get_recent_ticks(a.symbol, count=a.recent)
    travel = m.time_travel_query(a.symbol, datetime.fromisoformat(a.start), datetime.fromisoformat(a.end))
    decoded = [{k.decode(): v.decode() for k, v in f.items()} | {"stream_id": i.decode()} for i, f in travel]
    print(
        json.dumps(
            {
                "recent": recent,
                "time_travel_count": len(decoded),
                "time_travel_first": decoded[0] if decoded else None,
                "time_travel_last": decoded[-1] if decoded else None,
                "volume_sum": sum(int(t["quantity"]) for t in decoded),
            }
        )
    )


if __name__ == "__main__":
    main()
