//! One strategy call and one per-trade feature call through a slot, plugin vs
//! native. Needs the built plugins: `python3 scripts/build_plugins.py`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tickhost_core::extensions::{Microstructure, MicrostructureConfig};
use tickhost_core::features::V3_FEATURE_COUNT;
use tickhost_core::hooks::{FeatureExtensions, FeatureSchema, Strategies};
use tickhost_core::market::{AgentId, Candle, Price, Symbol, Trade, TradeType};
use tickhost_core::regime::{Regime, RegimeReading};
use tickhost_core::strategy::{RegimeStrategies, StrategyConfig, StrategyInput};
use tickhost_plugin::{
    FeatureSlot, FeatureSlots, PluginIndex, PluginRuntime, RegimePlugins, SlotPolicy, StrategySlots,
};

fn manifest(name: &str) -> PathBuf {
    PluginIndex::checkout().and_then(|i| i.manifest(name)).unwrap_or_else(|e| panic!("{e}"))
}

fn candle() -> Candle {
    Candle {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        open_ms: 0,
        close_ms: 59_999,
        open: 5000.0,
        high: 5002.0,
        low: 4999.0,
        close: 5001.0,
        volume: 100.0,
        financial_volume: 5e5,
        trades: 10,
        buy_volume: 60.0,
        sell_volume: 40.0,
        buy_trades: 6,
        sell_trades: 4,
        max_buy_run: 3,
        max_sell_run: 2,
    }
}

fn trade(i: u64) -> Trade {
    Trade {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        ts_ms: 1_700_000_000_000 + i as i64,
        trade_number: i,
        price: Price::from_f64(5000.0 + (i % 5) as f64).expect("price"),
        quantity: 1 + (i % 9) as i64,
        volume: 5000.0,
        buy_agent: AgentId(1),
        sell_agent: AgentId(2),
        trade_type: TradeType::AggressorBuy,
        is_edit: false,
    }
}

fn bench(c: &mut Criterion) {
    let rt = PluginRuntime::new().expect("runtime");
    let frame = vec![0.0; V3_FEATURE_COUNT];
    let cndl = candle();
    let input = StrategyInput {
        candle: &cndl,
        features: &frame,
        regime: RegimeReading { regime: Regime::TrendUp, confidence: 0.7, adx: 30.0 },
    };
    let config = StrategyConfig::default();
    let policy = SlotPolicy::default();

    let mut native = RegimeStrategies::new(&config);
    c.bench_function("strategy/native", |b| b.iter(|| black_box(native.on_candle(black_box(&input)))));
    for name in ["good-counter", "trend"] {
        let plugins = RegimePlugins { trend_up: Some(rt.load(&manifest(name)).expect("load")), ..Default::default() };
        let mut slots = StrategySlots::new(&config, &FeatureSchema::v3(), plugins, policy.clone()).expect("slots");
        c.bench_function(&format!("strategy/slot-{name}"), |b| {
            b.iter(|| black_box(slots.on_candle(black_box(&input))))
        });
    }

    let mut native = Microstructure::new(MicrostructureConfig::default());
    let mut i = 0u64;
    c.bench_function("trade-feature/native-microstructure", |b| {
        b.iter(|| {
            i += 1;
            native.on_trade(black_box(&trade(i)), black_box(&frame));
        })
    });
    for name in ["good-counter-features", "microstructure"] {
        let p = rt.load(&manifest(name)).expect("load");
        let mut slots = FeatureSlots::new(vec![FeatureSlot::plugin(p)], policy.clone()).expect("slots");
        let mut i = 0u64;
        c.bench_function(&format!("trade-feature/slot-{name}"), |b| {
            b.iter(|| {
                i += 1;
                slots.on_trade(black_box(&trade(i)), black_box(&frame));
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
