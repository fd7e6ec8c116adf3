// Unit tests of app.js on Node, before it becomes a component:
// `node --test` in this directory (scripts/build_plugins.py --test runs it).
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';

import { lifecycle, strategy } from './app.js';

const candle = (close) => ({
  openMs: 0n, closeMs: 59000n, open: close, high: close + 1, low: close - 1, close,
  volume: 10, financialVolume: 1e5, trades: 5, buyVolume: 6, sellVolume: 4, buyTrades: 3, sellTrades: 2,
});
const up = { regime: 'trend-up', confidence: 0.7, adx: 35 };
const down = { regime: 'trend-down', confidence: 0.7, adx: 35 };
// momentum_pct_5, momentum_pct_20, adx, atr_14
const rising = [0.002, 0.004, 35, 3];

beforeEach(() => lifecycle.restore(new Uint8Array()));

test('describe names the inputs in order', () => {
  const d = lifecycle.describe();
  assert.equal(d.name, 'momentum');
  assert.deepEqual(d.inputs, ['v3_momentum_pct_5', 'v3_momentum_pct_20', 'v3_adx', 'v3_atr_14']);
  assert.deepEqual(d.outputs, []);
  assert.equal(d.cadence, 'per-candle');
});

test('follows an up trend, then cools down', () => {
  const s = strategy.onCandle(candle(5000), up, rising);
  assert.equal(s.action, 'buy', s.reason);
  assert.equal(s.stopPoints, 4.5);
  assert.equal(s.targetPoints, 9);
  assert.equal(s.expectedMove, 0.004);
  assert.equal(strategy.onCandle(candle(5000), up, rising).action, 'hold');
});

test('sells a down trend and holds against the momentum', () => {
  assert.equal(strategy.onCandle(candle(5000), down, rising.map((x, i) => (i < 2 ? -x : x))).action, 'sell');
  lifecycle.restore(new Uint8Array());
  assert.equal(strategy.onCandle(candle(5000), down, rising).action, 'hold');
  assert.equal(strategy.onCandle(candle(5000), { ...up, regime: 'range' }, rising).action, 'hold');
});

test('hostile inputs give finite answers', () => {
  for (const inputs of [[], [NaN, NaN, NaN, NaN], [Infinity, -Infinity, 1e308, -1e308], new Array(20).fill(0)]) {
    const s = strategy.onCandle(candle(5000), { regime: 'trend-up', confidence: NaN, adx: NaN }, inputs);
    for (const k of ['confidence', 'probability', 'direction', 'expectedMove', 'stopPoints', 'targetPoints']) {
      assert.ok(Number.isFinite(s[k]), `${k} of ${JSON.stringify(inputs)}`);
    }
  }
});

test('snapshot round trip; garbage is an error with a payload', () => {
  strategy.onCandle(candle(5000), up, rising);
  const snap = lifecycle.snapshot();
  assert.ok(snap instanceof Uint8Array);
  lifecycle.restore(new Uint8Array());
  assert.notDeepEqual(lifecycle.snapshot(), snap);
  lifecycle.restore(snap);
  assert.deepEqual(lifecycle.snapshot(), snap);
  const enc = (s) => new TextEncoder().encode(s);
  for (const g of [new Uint8Array([0xff, 0xfe]), enc('[]'), enc('{"plugin":"other"}'), enc('{"plugin":"momentum","v":9}'),
    enc('{"plugin":"momentum","v":1,"calls":-1,"signals":0,"cooldown":0}')]) {
    assert.throws(() => lifecycle.restore(g), (e) => typeof e.payload === 'string');
  }
  assert.deepEqual(lifecycle.snapshot(), snap, 'a failed restore keeps the state');
});
