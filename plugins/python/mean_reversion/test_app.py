"""Unit tests of app.py on plain CPython, before it becomes a component.

Needs the generated bindings on the path; scripts/build_plugins.py runs this
with them (`--test`). By hand, from this directory:

    componentize-py -d ../../../wit -w regime-strategy bindings /tmp/mr-bindings
    PYTHONPATH=/tmp/mr-bindings python3 -m unittest test_app
"""

import math
import unittest

from componentize_py_types import Err
from wit_world.imports import types

import app

BUY_INPUTS = [0.02, 5010.0, 4990.0, 2.0, 0.4, 1.5]  # below the lower band, flow and candle up


def candle(close: float) -> types.Candle:
    return types.Candle(open_ms=0, close_ms=59_000, open=close, high=close + 1, low=close - 1,
                        close=close, volume=10.0, financial_volume=1e5, trades=5,
                        buy_volume=6.0, sell_volume=4.0, buy_trades=3, sell_trades=2)


def reading(regime=types.Regime.RANGE, confidence=0.6) -> types.RegimeReading:
    return types.RegimeReading(regime=regime, confidence=confidence, adx=18.0)


class MeanReversionTest(unittest.TestCase):
    def setUp(self):
        app.Lifecycle().restore(b"")
        self.strategy = app.Strategy()

    def test_describe(self):
        d = app.Lifecycle().describe()
        self.assertEqual(d.name, "mean_reversion")
        self.assertEqual(d.inputs, app.INPUTS)
        self.assertEqual(d.outputs, [])
        self.assertEqual(d.cadence, types.Cadence.PER_CANDLE)

    def test_fades_the_lower_band_then_cools_down(self):
        s = self.strategy.on_candle(candle(4988.0), reading(), BUY_INPUTS)
        self.assertEqual(s.action, types.Action.BUY, s.reason)
        self.assertEqual(s.stop_points, 3.0)
        self.assertEqual(s.target_points, 12.0)
        self.assertAlmostEqual(s.expected_move, 12.0 / 4988.0)
        for x in (s.confidence, s.probability, s.direction):
            self.assertTrue(0.0 <= x <= 1.0)
        s = self.strategy.on_candle(candle(4988.0), reading(), BUY_INPUTS)
        self.assertEqual(s.action, types.Action.HOLD)
        self.assertIn("cooling", s.reason)

    def test_sells_the_upper_band(self):
        s = self.strategy.on_candle(candle(5012.0), reading(), [0.97, 5010.0, 4990.0, 2.0, -0.4, -1.0])
        self.assertEqual(s.action, types.Action.SELL, s.reason)

    def test_holds_outside_range_and_mid_band(self):
        s = self.strategy.on_candle(candle(4988.0), reading(types.Regime.TREND_UP), BUY_INPUTS)
        self.assertEqual(s.action, types.Action.HOLD)
        s = self.strategy.on_candle(candle(5000.0), reading(), [0.5, 5010.0, 4990.0, 2.0, 0.4, 1.5])
        self.assertEqual(s.action, types.Action.HOLD)

    def test_hostile_inputs_never_raise(self):
        for inputs in ([], [math.nan] * 6, [math.inf, -math.inf, 1e308, -1e308, 0.0, 0.0], [0.0] * 20):
            for close in (0.0, -1.0, math.nan, 5000.0):
                s = self.strategy.on_candle(candle(close), reading(confidence=math.nan), inputs)
                for x in (s.confidence, s.probability, s.direction, s.expected_move, s.stop_points,
                          s.target_points):
                    self.assertTrue(math.isfinite(x), (inputs, close, s))

    def test_snapshot_round_trip_and_garbage(self):
        life = app.Lifecycle()
        self.strategy.on_candle(candle(4988.0), reading(), BUY_INPUTS)
        snap = life.snapshot()
        life.restore(b"")
        self.assertNotEqual(life.snapshot(), snap)
        life.restore(snap)
        self.assertEqual(life.snapshot(), snap)
        for garbage in (b"\xff\xfe", b"[]", b'{"plugin":"other"}', b'{"plugin":"mean_reversion","v":9}',
                        b'{"plugin":"mean_reversion","v":1,"calls":-1,"signals":0,"cooldown":0}', b"garbage"):
            with self.assertRaises(Err):
                life.restore(garbage)
        self.assertEqual(life.snapshot(), snap, "a failed restore keeps the state")


if __name__ == "__main__":
    unittest.main()
