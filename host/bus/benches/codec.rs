//! Encode and decode of one trade message, JSON (the seeds' fields) vs rkyv
//! (header + archive, validated and read in place), into reused buffers.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tickhost_bus::archive::{Encoder, Headed, read_tick};
use tickhost_bus::json::{decode_tick, encode_trade};
use tickhost_core::{AgentDirectory, AgentId, Price, Symbol, Trade, TradeType};

fn trade() -> Trade {
    Trade {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        ts_ms: 1_704_715_238_123,
        trade_number: 123_456,
        price: Price::from_f64(5012.5).expect("price"),
        quantity: 3,
        volume: 150_375.0,
        buy_agent: AgentId(7),
        sell_agent: AgentId(9),
        trade_type: TradeType::AggressorBuy,
        is_edit: false,
    }
}

fn codec(c: &mut Criterion) {
    let t = trade();
    let mut buf = Vec::with_capacity(512);
    let mut enc = Encoder::new();
    let mut g = c.benchmark_group("trade message");
    g.bench_function("encode json", |b| b.iter(|| encode_trade(&mut buf, black_box(&t), 1, -180)));
    g.bench_function("encode rkyv", |b| b.iter(|| enc.trade(&mut buf, black_box(&t), 1)));
    let mut json = Vec::new();
    encode_trade(&mut json, &t, 1, -180);
    let mut rkyv = Vec::new();
    enc.trade(&mut rkyv, &t, 1);
    let mut agents = AgentDirectory::new();
    g.bench_function("decode json", |b| b.iter(|| decode_tick(black_box(&json), -180, &mut agents).expect("json")));
    g.bench_function("decode rkyv (validate + read in place)", |b| {
        b.iter(|| match read_tick(black_box(&rkyv)).expect("rkyv") {
            Headed::Trade { trade, .. } => trade.to_trade().expect("trade"),
            Headed::EndOfStream { .. } => unreachable!(),
        })
    });
    g.finish();
    println!("message sizes: json {} bytes, rkyv {} bytes (16 of header)", json.len(), rkyv.len());
}

criterion_group!(benches, codec);
criterion_main!(benches);
