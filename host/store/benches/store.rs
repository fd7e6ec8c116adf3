//! Store throughput against a real valkey-server (started here on a free
//! port; skipped with a message when none is installed) and the embedded
//! store: entries/s through `Store::apply` in pipelined batches, and a
//! time-travel query of 10k entries out of 1M, decoded by the generic
//! client vs decoded in place (`raw`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickhost_store::raw::RawEntries;
use tickhost_store::server::ServerProcess;
use tickhost_store::{EmbeddedStore, Op, Store, StreamId, ValkeyConfig, ValkeyStore};

const BATCH: usize = 1000;

/// Tick-shaped entries (11 fields, as the writer stores trades).
fn ticks(key: &str, from_ms: u64, n: usize) -> Vec<Op> {
    (0..n)
        .map(|i| Op::XAdd {
            key: key.to_string(),
            id: StreamId::new(from_ms + i as u64, 0),
            maxlen: 0,
            fields: vec![
                ("symbol".into(), "WDOFUT".into()),
                ("timestamp".into(), "2024-01-08T12:00:00.000Z".into()),
                ("timestamp_ms".into(), (from_ms + i as u64).to_string()),
                ("trade_id".into(), i.to_string()),
                ("price".into(), "5001.5".into()),
                ("volume".into(), "100030".into()),
                ("quantity".into(), "2".into()),
                ("buyer".into(), "12".into()),
                ("seller".into(), "40".into()),
                ("trade_type".into(), "2".into()),
                ("is_edit".into(), "false".into()),
            ],
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = match ServerProcess::start(dir.path(), &[]) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("store bench: no valkey-server ({e}); only the embedded store is measured");
            None
        }
    };
    let mut g = c.benchmark_group("write");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    if let Some(server) = &server {
        let mut store = ValkeyStore::new(ValkeyConfig::new(server.url())).expect("client");
        let mut next = 1_000_000u64;
        g.bench_function("valkey_pipeline_1000_xadd", |b| {
            b.iter_batched(
                || {
                    next += BATCH as u64;
                    ticks("bench:write", next, BATCH)
                },
                |ops| black_box(store.apply(&ops).expect("apply")),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    let mut emb = EmbeddedStore::open(&dir.path().join("embedded.jsonl")).expect("embedded");
    let mut next = 1_000_000u64;
    g.bench_function("embedded_1000_xadd", |b| {
        b.iter_batched(
            || {
                next += BATCH as u64;
                ticks("bench:write", next, BATCH)
            },
            |ops| black_box(emb.apply(&ops).expect("apply")),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();

    let Some(server) = &server else { return };
    let mut store = ValkeyStore::new(ValkeyConfig::new(server.url())).expect("client");
    let total = 1_000_000;
    for chunk in 0..total / 10_000 {
        let ops = ticks("bench:1m", 1 + (chunk * 10_000) as u64, 10_000);
        for part in ops.chunks(BATCH) {
            store.apply(part).expect("fill");
        }
    }
    let (from, to) = (StreamId::new(500_001, 0), StreamId::new(510_000, 0));
    let mut g = c.benchmark_group("time_travel_10k_of_1m");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    g.bench_function("generic_client", |b| {
        b.iter(|| {
            let e = store.range("bench:1m", from, to, 10_000).expect("range");
            assert_eq!(e.len(), 10_000);
            black_box(e)
        })
    });
    let mut raw = store.raw_connection().expect("raw");
    let mut out = RawEntries::default();
    g.bench_function("raw_decode", |b| {
        b.iter(|| {
            raw.range("bench:1m", from, to, 10_000, &mut out).expect("range");
            assert_eq!(out.len(), 10_000);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
