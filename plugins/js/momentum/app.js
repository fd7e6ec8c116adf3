// momentum: a regime strategy in plain JavaScript (an ES module).
//
// In a trend regime it follows the trend when both momenta (5 and 20
// candles) point the regime's way and ADX confirms the trend; the stop is
// an ATR multiple and the target twice the stop. It counts its calls and
// signals, and waits a few candles after each signal.
//
// Built into a WebAssembly component by componentize-js (world
// `regime-strategy`). Each exported interface is an exported object whose
// methods are the interface's functions in camelCase; records are plain
// objects with camelCase fields, enums are their WIT names as strings
// ('trend-up', 'buy'), list<u8> is a Uint8Array, s64/u64 are BigInts. A
// function returning result<_, string> returns normally for ok and throws
// an object with a `payload` (the string) for err.

const NAME = 'momentum';
const VERSION = '0.1.0';

// Feature names, in the order the host sends their values.
const INPUTS = ['v3_momentum_pct_5', 'v3_momentum_pct_20', 'v3_adx', 'v3_atr_14'];

const MIN_ADX = 25;
const MIN_STOP_POINTS = 4;
const STOP_ATR = 1.5;
const REWARD_RISK = 2;
const COOLDOWN_CANDLES = 3;
const MIN_CONFIDENCE = 0.6;
const MIN_PROBABILITY = 0.6;
const MIN_DIRECTION = 0.75;
// Expected move as a fraction of price needs at least this much momentum.
const MIN_MOMENTUM_PCT = 0.0005;

const SNAPSHOT_VERSION = 1;

/** An error the host sees as `err(payload)` instead of a trap. */
class ComponentError extends Error {
  constructor(payload) {
    super(payload);
    this.payload = payload;
  }
}

const fresh = () => ({ calls: 0, signals: 0, cooldown: 0 });
let state = fresh();

const finite = (x) => (Number.isFinite(x) ? x : 0);
const unit = (x) => Math.min(Math.max(finite(x), 0), 1);

function hold(confidence, reason) {
  return {
    action: 'hold',
    confidence: unit(confidence),
    probability: 0,
    direction: 0,
    expectedMove: 0,
    stopPoints: 0,
    targetPoints: 0,
    reason,
  };
}

function decide(regime, inputs) {
  state.calls += 1;
  const confidence = unit(regime.confidence);
  const sign = regime.regime === 'trend-up' ? 1 : regime.regime === 'trend-down' ? -1 : 0;
  if (sign === 0) return hold(confidence, 'not a trend regime');
  if (state.cooldown > 0) {
    state.cooldown -= 1;
    return hold(confidence, 'cooling down after a signal');
  }
  const [m5, m20, adx, atr] = INPUTS.map((_, i) => finite(inputs[i]));
  // Four pieces of evidence; direction is the share that agrees.
  const votes = [m5 * sign > 0, m20 * sign > 0, adx >= MIN_ADX, Math.abs(m5) >= Math.abs(m20) / 4];
  const direction = votes.filter(Boolean).length / votes.length;
  const adxExcess = Math.min(Math.max((adx - MIN_ADX) / 25, 0), 1);
  const probability = 0.5 + 0.25 * direction + 0.25 * adxExcess;
  const expectedMove = Math.max(m20 * sign, 0);
  if (confidence < MIN_CONFIDENCE) return hold(confidence, 'confidence below threshold');
  if (probability < MIN_PROBABILITY) return hold(confidence, 'probability below threshold');
  if (direction < MIN_DIRECTION) return hold(confidence, 'direction below threshold');
  if (expectedMove < MIN_MOMENTUM_PCT) return hold(confidence, 'momentum too small');
  const stop = Math.max(STOP_ATR * atr, MIN_STOP_POINTS);
  state.signals += 1;
  state.cooldown = COOLDOWN_CANDLES;
  return {
    action: sign > 0 ? 'buy' : 'sell',
    confidence,
    probability: unit(probability),
    direction: unit(direction),
    expectedMove,
    stopPoints: stop,
    targetPoints: stop * REWARD_RISK,
    reason: 'momentum follow',
  };
}

function parseSnapshot(bytes) {
  let doc;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new ComponentError(`momentum snapshot: not JSON (${e.message})`);
  }
  if (doc === null || typeof doc !== 'object' || doc.plugin !== NAME) {
    throw new ComponentError('momentum snapshot: not a momentum snapshot');
  }
  if (doc.v !== SNAPSHOT_VERSION) {
    throw new ComponentError(`momentum snapshot: unknown version ${JSON.stringify(doc.v)}`);
  }
  const restored = fresh();
  for (const key of Object.keys(restored)) {
    const value = doc[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ComponentError(`momentum snapshot: ${key} must be a non-negative integer`);
    }
    restored[key] = value;
  }
  return restored;
}

export const lifecycle = {
  describe() {
    return { name: NAME, version: VERSION, inputs: [...INPUTS], outputs: [], cadence: 'per-candle' };
  },

  snapshot() {
    const doc = { plugin: NAME, v: SNAPSHOT_VERSION, ...state };
    return new TextEncoder().encode(JSON.stringify(doc));
  },

  restore(bytes) {
    state = bytes.length === 0 ? fresh() : parseSnapshot(bytes);
  },
};

export const strategy = {
  onCandle(candle, regime, inputs) {
    try {
      return decide(regime, inputs);
    } catch (e) {
      // A bug answers hold rather than trap.
      return hold(0, 'internal error');
    }
  },
};
