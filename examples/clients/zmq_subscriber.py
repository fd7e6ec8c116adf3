#!/usr/bin/env python3
"""A consumer of tickhost's ZeroMQ feed, written the way the seeds'
ZMQTradingDataConsumer is: SUB sockets, prefix subscriptions (`tick_`,
`signal_`), recv_multipart -> [topic, data], orjson.loads(data).

    python3 examples/clients/zmq_subscriber.py --ticks tcp://127.0.0.1:5555 \
        --signals tcp://127.0.0.1:5558 [--timeout 30]

Prints one JSON line per kind of check and a summary line (JSON) at the end:
ticks and signals received, the first tick, the sequence range, gaps. Ends at
tickhost's end-of-stream message (topic `control`) or after --timeout
seconds without a message. Exit 1 when a tick misses a field the seeds read.
"""
import argparse
import sys
import time

import zmq

try:
    import orjson as jsonlib  # what the seeds use
except ImportError:  # pragma: no cover
    import json as jsonlib

TICK_FIELDS = ["symbol", "timestamp", "trade_id", "price", "volume", "quantity",
               "buyer", "seller", "trade_type", "is_edit"]


def emit(obj):
    out = jsonlib.dumps(obj)
    print(out.decode() if isinstance(out, bytes) else out, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", required=True)
    ap.add_argument("--signals")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    context = zmq.Context()
    tick_subscriber = context.socket(zmq.SUB)
    tick_subscriber.connect(args.ticks)
    tick_subscriber.setsockopt(zmq.SUBSCRIBE, b"tick_")
    tick_subscriber.setsockopt(zmq.SUBSCRIBE, b"control")
    poller = zmq.Poller()
    poller.register(tick_subscriber, zmq.POLLIN)
    signal_subscriber = None
    if args.signals:
        signal_subscriber = context.socket(zmq.SUB)
        signal_subscriber.connect(args.signals)
        signal_subscriber.setsockopt(zmq.SUBSCRIBE, b"signal_")
        poller.register(signal_subscriber, zmq.POLLIN)
    emit({"ready": True})

    ticks = signals = 0
    first_tick = None
    first_seq = last_seq = None
    gaps = 0
    actions = {}
    end = False
    bad = []
    last_message = time.monotonic()
    while not end and time.monotonic() - last_message < args.timeout:
        events = dict(poller.poll(100))
        if tick_subscriber in events:
            while True:
                try:
                    topic, data = tick_subscriber.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                last_message = time.monotonic()
                message = jsonlib.loads(data)
                if topic == b"control":
                    end = message.get("control") == "end_of_stream"
                    continue
                missing = [f for f in TICK_FIELDS if f not in message]
                if missing and len(bad) < 5:
                    bad.append({"topic": topic.decode(), "missing": missing})
                if topic.decode() != "tick_" + str(message.get("symbol")):
                    bad.append({"topic": topic.decode(), "symbol": message.get("symbol")})
                ticks += 1
                if first_tick is None:
                    first_tick = message
                seq = message.get("seq")
                if seq is not None:
                    if last_seq is not None and seq != last_seq + 1:
                        gaps += 1
                    first_seq = seq if first_seq is None else first_seq
                    last_seq = seq
        if signal_subscriber is not None and signal_subscriber in events:
            while True:
                try:
                    topic, data = signal_subscriber.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                last_message = time.monotonic()
                signal = jsonlib.loads(data)
                signals += 1
                action = signal.get("action")
                actions[action] = actions.get(action, 0) + 1
                if topic.decode() != "signal_" + str(action):
                    bad.append({"topic": topic.decode(), "action": action})

    summary = {"ticks": ticks, "signals": signals, "signal_actions": actions,
               "first_tick": first_tick, "first_seq": first_seq, "last_seq": last_seq,
               "gaps": gaps, "end_of_stream": end, "bad": bad}
    emit(summary)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
