//! Parsing throughput of the Profit CSV reader, in rows per second, on an
//! in-memory file so the number measures parsing, not the disk.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickhost_core::time::{B3_UTC_OFFSET_MINUTES, LocalTime};
use tickhost_core::{AgentDirectory, Price, Symbol, Trade, TradeType};
use tickhost_feed::profit_csv::{ProfitCsvOptions, ProfitCsvReader, ProfitCsvWriter};

const ROWS: u64 = 200_000;

/// A WDO-like session: a few dozen brokers, prices on the 0.5 grid, several
/// trades per second, as in a real export.
fn build_csv(millis: bool) -> Vec<u8> {
    let mut agents = AgentDirectory::new();
    let brokers: Vec<_> = (0..40).map(|i| agents.intern(format!("Broker {i}").as_bytes())).collect();
    let open = LocalTime { year: 2024, month: 1, day: 8, hour: 9, minute: 0, second: 0, millisecond: 0 }
        .to_epoch_ms(B3_UTC_OFFSET_MINUTES)
        .expect("valid session open");
    let symbol = Symbol::new("WDOFUT").expect("valid symbol");
    let mut w = ProfitCsvWriter::new(Vec::with_capacity(ROWS as usize * 100)).with_millis(millis);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for n in 0..ROWS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let price = Price::from_raw(50_000_000 + (seed % 200) as i64 * 5_000);
        let quantity = 1 + (seed >> 8) as i64 % 20;
        let t = Trade {
            symbol,
            ts_ms: open + n as i64 * 137,
            trade_number: 10 + n,
            price,
            quantity,
            volume: price.as_f64() * quantity as f64 * 10.0,
            buy_agent: brokers[(seed >> 16) as usize % brokers.len()],
            sell_agent: brokers[(seed >> 24) as usize % brokers.len()],
            trade_type: if seed & 1 == 0 { TradeType::AggressorBuy } else { TradeType::AggressorSell },
            is_edit: false,
        };
        w.write_trade(&t, &agents).expect("in-memory write");
    }
    w.finish().expect("in-memory sink")
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("profit_csv");
    group.throughput(Throughput::Elements(ROWS));
    for (name, millis) in [("parse_seconds", false), ("parse_millis", true)] {
        let csv = build_csv(millis);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut r = ProfitCsvReader::new(black_box(csv.as_slice()), "bench", ProfitCsvOptions::default());
                let mut sum = 0i64;
                while let Some(t) = r.next_trade().expect("generated rows are valid") {
                    sum = sum.wrapping_add(t.price.raw() ^ t.ts_ms);
                }
                assert_eq!(r.stats().trades, ROWS);
                black_box(sum)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
