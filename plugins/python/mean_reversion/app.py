"""mean_reversion: a range-fade regime strategy written in pure Python.

In a `range` regime it sells a close at or above the upper Bollinger band
and buys one at or below the lower band, when the order flow or the last
candle's move agrees, targeting the middle band with an ATR stop. It then
waits a few candles before fading again.

Built into a WebAssembly component by componentize-py (world
`regime-strategy`); `componentize-py -d wit -w regime-strategy bindings DIR`
writes the `wit_world` package imported below.
"""

import json
import math

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

NAME = "mean_reversion"
VERSION = "0.1.0"

# Feature names, in the order the host sends their values.
INPUTS = [
    "v3_bb_position_20",
    "v3_bb_upper_20",
    "v3_bb_lower_20",
    "v3_atr_14",
    "v3_volume_imbalance",
    "v3_momentum_1",
]

EDGE = 0.1  # bb_position <= EDGE buys, >= 1 - EDGE sells
MIN_STOP_POINTS = 3.0
COOLDOWN_CANDLES = 5
MIN_CONFIDENCE = 0.60
MIN_PROBABILITY = 0.60
MIN_DIRECTION = 0.66

SNAPSHOT_VERSION = 1


class State:
    def __init__(self):
        self.calls = 0
        self.signals = 0
        self.cooldown = 0

    def to_bytes(self) -> bytes:
        doc = {"plugin": NAME, "v": SNAPSHOT_VERSION, "calls": self.calls,
               "signals": self.signals, "cooldown": self.cooldown}
        return json.dumps(doc, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(data: bytes) -> "State":
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("plugin") != NAME:
            raise ValueError("not a mean_reversion snapshot")
        if doc.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown snapshot version {doc.get('v')!r}")
        state = State()
        for key in ("calls", "signals", "cooldown"):
            value = doc.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer")
            setattr(state, key, value)
        return state


STATE = State()


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def hold(confidence: float, reason: str) -> types.Signal:
    return types.Signal(action=types.Action.HOLD, confidence=min(max(confidence, 0.0), 1.0),
                        probability=0.0, direction=0.0, expected_move=0.0,
                        stop_points=0.0, target_points=0.0, reason=reason)


def decide(state: State, candle: types.Candle, regime: types.RegimeReading,
           inputs: list) -> types.Signal:
    state.calls += 1
    confidence = min(max(finite(regime.confidence), 0.0), 1.0)
    if regime.regime != types.Regime.RANGE:
        return hold(confidence, "not a range regime")
    if state.cooldown > 0:
        state.cooldown -= 1
        return hold(confidence, "cooling down after a fade")
    values = [finite(x) for x in inputs] + [0.0] * (len(INPUTS) - len(inputs))
    position, upper, lower, atr, imbalance, momentum = values[:len(INPUTS)]
    close = finite(candle.close)
    if position <= EDGE:
        action, votes = types.Action.BUY, (imbalance > 0.0, momentum > 0.0)
    elif position >= 1.0 - EDGE:
        action, votes = types.Action.SELL, (imbalance < 0.0, momentum < 0.0)
    else:
        return hold(confidence, "inside the bands")
    # How far past the edge zone (0 at the zone's start, 1 well outside the band).
    stretch = min(1.0, (abs(position - 0.5) - (0.5 - EDGE)) / 0.3)
    direction = (1 + sum(votes)) / (1 + len(votes))
    probability = 0.5 + 0.25 * max(stretch, 0.0) + 0.375 * (direction - 1.0 / 3.0)
    stop = max(atr, MIN_STOP_POINTS)
    target = abs((upper + lower) / 2.0 - close)
    if target < stop:
        return hold(confidence, "middle band closer than the stop")
    if close <= 0.0:
        return hold(confidence, "no price")
    if confidence < MIN_CONFIDENCE:
        return hold(confidence, "confidence below threshold")
    if probability < MIN_PROBABILITY:
        return hold(confidence, "probability below threshold")
    if direction < MIN_DIRECTION:
        return hold(confidence, "direction below threshold")
    state.signals += 1
    state.cooldown = COOLDOWN_CANDLES
    return types.Signal(action=action, confidence=confidence,
                        probability=min(max(probability, 0.0), 1.0),
                        direction=min(max(direction, 0.0), 1.0),
                        expected_move=target / close, stop_points=stop,
                        target_points=target, reason="band fade")


class Lifecycle(exports.Lifecycle):
    def describe(self) -> types.Description:
        return types.Description(name=NAME, version=VERSION, inputs=list(INPUTS),
                                 outputs=[], cadence=types.Cadence.PER_CANDLE)

    def snapshot(self) -> bytes:
        return STATE.to_bytes()

    def restore(self, state: bytes) -> None:
        global STATE
        if len(state) == 0:
            STATE = State()
            return
        try:
            restored = State.from_bytes(bytes(state))
        except Exception as e:  # noqa: BLE001 - any malformed snapshot is an error, never a trap
            raise Err(f"mean_reversion snapshot: {e}")
        STATE = restored


class Strategy(exports.Strategy):
    def on_candle(self, candle: types.Candle, regime: types.RegimeReading,
                  inputs: list) -> types.Signal:
        try:
            return decide(STATE, candle, regime, inputs)
        except Exception:  # noqa: BLE001 - a bug answers hold rather than trap
            return hold(0.0, "internal error")
