//! The publisher thread with real sockets: every record of the outbox lane
//! is either sent or counted as dropped at the high-water mark, a subscriber
//! sees the drops as gaps in `seq`, and a consumer refuses a payload of
//! another schema with a message naming it.

use std::time::Duration;

use tickhost_bus::publisher::{BusConfig, Publisher, PublisherSettings, SocketConfig, TradeChannel};
use tickhost_bus::{CurveConfig, Format, TickEvent, TickSubscriber};
use tickhost_core::engine::EngineObserver;
use tickhost_core::outbox::Outbox;
use tickhost_core::{AgentId, Price, Symbol, Trade, TradeType};

fn off() -> SocketConfig {
    SocketConfig { endpoint: String::new(), format: Format::Json }
}

fn trade(n: u64) -> Trade {
    Trade {
        symbol: Symbol::new("WDOFUT").expect("symbol"),
        ts_ms: 1_704_715_200_000 + n as i64,
        trade_number: n,
        price: Price::from_f64(5000.0).expect("price"),
        quantity: 1,
        volume: 50_000.0,
        buy_agent: AgentId(1),
        sell_agent: AgentId(2),
        trade_type: TradeType::AggressorBuy,
        is_edit: false,
    }
}

#[test]
fn a_slow_subscriber_costs_counted_drops_and_shows_them_as_gaps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("ipc://{}", dir.path().join("ticks.sock").display());
    let config = BusConfig {
        enabled: true,
        lane_capacity: 1 << 20,
        sndhwm: 50,
        linger_ms: 0,
        ticks: SocketConfig { endpoint: endpoint.clone(), format: Format::Rkyv },
        book: off(),
        history: off(),
        signals: off(),
        features: off(),
        decisions: off(),
        fills: off(),
        curve: CurveConfig::default(),
    };
    // A subscriber that does not read yet: its queue (and the kernel's) fills up.
    let mut sub = TickSubscriber::connect(&endpoint, &["tick_"], 50, &CurveConfig::default(), -180).expect("sub");
    let mut outbox = Outbox::new();
    let lane = outbox.add_lane("bus", 1 << 20, 0);
    let settings =
        PublisherSettings { trades_to: TradeChannel::Ticks, utc_offset_minutes: -180, feature_names: vec![] };
    let publisher = Publisher::spawn(lane, &config, settings).expect("publisher");
    let status = std::sync::Arc::clone(publisher.status());
    // Wait until the subscription reached the publisher.
    for _ in 0..200 {
        if status.sockets[0].3.subscriptions.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            break;
        }
        outbox.on_trade(&trade(0)); // sent to nobody yet or counted: seq 1.. either way
        std::thread::sleep(Duration::from_millis(10));
    }
    let warmup = outbox.lanes().next().map(|(_, c)| c.pushed()).unwrap_or(0);
    const N: u64 = 200_000;
    for n in 1..=N {
        outbox.on_trade(&trade(n));
    }
    drop(outbox);
    let status = publisher.join();
    let s = &status.sockets[0].3;
    let (published, dropped) =
        (s.published.load(std::sync::atomic::Ordering::Relaxed), s.dropped.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(published + dropped, N + warmup, "every record is sent or counted");
    assert!(dropped > 0, "a subscriber that does not read must cost drops at sndhwm 50 ({published} sent)");
    assert_eq!(status.lane.dropped(), 0);
    assert!(status.summary().contains(&format!("{dropped} dropped")), "{}", status.summary());
    assert_eq!(status.json()["sockets"][0]["dropped"], dropped);

    // What did arrive shows the drops as gaps.
    let mut got = 0u64;
    while let Some(ev) = sub.recv(500).expect("recv") {
        if ev == TickEvent::EndOfStream {
            break;
        }
        got += 1;
    }
    let c = sub.counters();
    assert!(got > 0 && got <= published, "got {got}, published {published}");
    assert!(c.gaps > 0 && c.missing > 0, "{c:?}");
}

#[test]
fn a_consumer_refuses_another_schema_by_name_and_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("ipc://{}", dir.path().join("t.sock").display());
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::PUB).expect("pub");
    publisher.bind(&endpoint).expect("bind");
    let mut sub = TickSubscriber::connect(&endpoint, &["tick_"], 1000, &CurveConfig::default(), -180).expect("sub");
    std::thread::sleep(Duration::from_millis(200));
    let mut good = Vec::new();
    tickhost_bus::archive::Encoder::new().trade(&mut good, &trade(1), 1);
    let mut newer = good.clone();
    newer[5] += 1; // schema version 2
    publisher.send_multipart([&b"tick_WDOFUT"[..], &newer], 0).expect("send");
    publisher.send_multipart([&b"tick_WDOFUT"[..], b"\x00garbage"], 0).expect("send");
    publisher.send_multipart([&b"tick_WDOFUT"[..], &good], 0).expect("send");
    assert_eq!(sub.recv(2000).expect("recv"), Some(TickEvent::Trade(trade(1))));
    assert_eq!(sub.counters().bad, 2);
    assert!(
        sub.first_bad[0].contains("schema version 2") && sub.first_bad[0].contains("version 1 only"),
        "{:?}",
        sub.first_bad
    );
    assert!(sub.first_bad[1].contains("00 67 61 72"), "{:?}", sub.first_bad);
}
