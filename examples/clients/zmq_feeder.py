#!/usr/bin/env python3
"""A publisher in the seeds' format (ZMQFeederWrapper): a PUB socket, two
frames [f"tick_{ticker}", orjson.dumps(tick_data)], the fields of the DLL's
trade callback with `timestamp` as the DLL's `DD/MM/YYYY HH:mm:SS.ZZZ`.
It replays a Profit CSV export, for feeding `tickhost run --feed zmq://...`.

    python3 examples/clients/zmq_feeder.py --bind tcp://127.0.0.1:5555 \
        --csv examples/data/wdo-2024-01-08.csv [--skip 100-104] [--settle 1.0]

A PUB cannot see its subscribers: like the seeds, it just waits --settle
seconds after binding (a subscriber that connects later misses the start).
--skip A-B leaves out trades A..B, to show the engine's gap detection.
"""
import argparse
import csv
import sys
import time

import zmq

try:
    import orjson

    def dumps(obj):
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover
    import json

    def dumps(obj):
        return json.dumps(obj).encode()

# ProfitDLL trade type codes for the CSV export's names.
TRADE_TYPES = {"Cross": 1, "AggressorBuyer": 2, "AggressorSeller": 3, "Auction": 4, "Surveillance": 5,
               "Expit": 6, "OptionsExercise": 7, "OverTheCounter": 8, "DerivativeTerm": 9, "Index": 10,
               "BTC": 11, "OnBehalf": 12, "RLP": 13}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--skip", default="")
    ap.add_argument("--settle", type=float, default=1.0)
    args = ap.parse_args()
    skip = range(0)
    if args.skip:
        a, b = args.skip.split("-")
        skip = range(int(a), int(b) + 1)

    context = zmq.Context()
    tick_publisher = context.socket(zmq.PUB)
    tick_publisher.setsockopt(zmq.SNDHWM, 0)  # no HWM: the replay is short, nothing dropped here
    tick_publisher.bind(args.bind)
    time.sleep(args.settle)
    sent = 0
    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)  # header
        for row in rows:
            ticker, date, hhmmss, number, price, qty, vol, buyer, seller, ttype = row[:10]
            edit = len(row) > 11 and row[11] == "Y"
            if int(number) in skip:
                continue
            ms = hhmmss[6:9] if len(hhmmss) > 6 else "000"
            tick_data = {
                "symbol": ticker,
                "timestamp": f"{date[6:8]}/{date[4:6]}/{date[0:4]} {hhmmss[0:2]}:{hhmmss[2:4]}:{hhmmss[4:6]}.{ms:0<3}",
                "trade_id": int(number),
                "price": float(price),
                "volume": float(vol),
                "quantity": int(qty),
                "buyer": buyer,
                "seller": seller,
                "trade_type": TRADE_TYPES.get(ttype, 32),
                "is_edit": edit,
            }
            tick_publisher.send_multipart([f"tick_{ticker}".encode(), dumps(tick_data)])
            sent += 1
    print(f"published {sent} ticks on {args.bind}", flush=True)
    time.sleep(0.5)  # let the last messages leave before the socket closes
    tick_publisher.close(linger=2000)
    context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
