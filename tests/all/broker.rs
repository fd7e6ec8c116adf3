use tickhost_core::broker::{BrokerConfig, ExitReason, FillKind, InstrumentConfig, PaperBroker, TrailingConfig};
use tickhost_core::regime::Regime;
use tickhost_core::{AgentId, Price, Side, Symbol, Trade, TradeType};

fn wdo() -> Symbol {
    Symbol::new("WDOFUT").expect("symbol")
}

fn trade(ts_ms: i64, price: f64) -> Trade {
    Trade {
        symbol: wdo(),
        ts_ms,
        trade_number: ts_ms as u64,
        price: Price::from_f64(price).expect("price"),
        quantity: 1,
        volume: price * 10.0,
        buy_agent: AgentId(0),
        sell_agent: AgentId(1),
        trade_type: TradeType::AggressorBuy,
        is_edit: false,
    }
}

fn broker(slippage_ticks: i64) -> PaperBroker {
    PaperBroker::new(
        BrokerConfig { slippage_ticks, fee_per_contract_brl: 1.0, ..BrokerConfig::default() },
        &InstrumentConfig::default(),
    )
}

#[test]
fn entry_fills_on_the_next_trade_with_slippage_and_fees() {
    let mut b = broker(1);
    b.submit_entry(0, wdo(), Side::Buy, 1, 5.0, 10.0, Regime::TrendUp);
    assert_eq!(b.exposure(), 1, "a pending entry counts as exposure");
    let fill = b.on_trade(&trade(1, 5000.0)).entry.expect("filled");
    assert_eq!(fill.price.as_f64(), 5000.5);
    assert_eq!(fill.fee_brl, 1.0);
    assert_eq!(fill.kind, FillKind::Entry);
    let pos = b.position().expect("position");
    assert_eq!((pos.stop.as_f64(), pos.target.as_f64()), (4995.5, 5010.5));
}

#[test]
fn stop_fills_at_the_trade_that_crossed_it() {
    let mut b = broker(1);
    b.submit_entry(0, wdo(), Side::Buy, 1, 5.0, 10.0, Regime::TrendUp);
    b.on_trade(&trade(1, 5000.0));
    assert!(b.on_trade(&trade(2, 4996.0)).exit.is_none());
    // Gapped through the 4995.5 stop: fills at the trade less one tick of slippage.
    let (fill, trip) = b.on_trade(&trade(3, 4994.0)).exit.expect("stopped");
    assert_eq!(fill.kind, FillKind::Exit(ExitReason::Stop));
    assert_eq!(trip.exit_price.as_f64(), 4993.5);
    assert_eq!(trip.pnl_points, -7.0);
    assert_eq!(trip.pnl_brl, -72.0); // 7 points x R$10 + R$2 fees
    assert!(b.position().is_none());
}

#[test]
fn target_fills_at_the_limit_price() {
    let mut b = broker(0);
    b.submit_entry(0, wdo(), Side::Sell, 1, 5.0, 10.0, Regime::TrendDown);
    b.on_trade(&trade(1, 5000.0));
    let (_, trip) = b.on_trade(&trade(2, 4989.0)).exit.expect("target");
    assert_eq!(trip.exit_reason, ExitReason::Target);
    assert_eq!(trip.exit_price.as_f64(), 4990.0);
    assert_eq!(trip.pnl_points, 10.0);
}

#[test]
fn trailing_stop_moves_to_breakeven_plus_two_then_every_five_points() {
    let mut b = broker(0);
    b.submit_entry(0, wdo(), Side::Buy, 1, 5.0, 100.0, Regime::TrendUp);
    b.on_trade(&trade(1, 5000.0));
    let stop = |b: &PaperBroker| b.position().expect("open").stop.as_f64();
    b.on_trade(&trade(2, 5009.5));
    assert_eq!(stop(&b), 4995.0, "not yet at +10");
    b.on_trade(&trade(3, 5010.0));
    assert_eq!(stop(&b), 5002.0, "breakeven + 2 at +10");
    b.on_trade(&trade(4, 5014.5));
    assert_eq!(stop(&b), 5002.0);
    b.on_trade(&trade(5, 5015.0));
    assert_eq!(stop(&b), 5007.0, "+5 more");
    b.on_trade(&trade(6, 5011.0));
    assert_eq!(stop(&b), 5007.0, "a stop never moves back");
    let (fill, trip) = b.on_trade(&trade(7, 5007.0)).exit.expect("trailed out");
    assert_eq!(fill.kind, FillKind::Exit(ExitReason::TrailingStop));
    assert_eq!(trip.pnl_points, 7.0);
}

#[test]
fn trailing_stop_mirrors_for_shorts_and_can_be_disabled() {
    let mut b = broker(0);
    b.submit_entry(0, wdo(), Side::Sell, 1, 5.0, 100.0, Regime::TrendDown);
    b.on_trade(&trade(1, 5000.0));
    b.on_trade(&trade(2, 4985.0));
    assert_eq!(b.position().expect("open").stop.as_f64(), 4993.0);

    let mut off = PaperBroker::new(
        BrokerConfig {
            slippage_ticks: 0,
            trailing: TrailingConfig { enabled: false, ..TrailingConfig::default() },
            ..BrokerConfig::default()
        },
        &InstrumentConfig::default(),
    );
    off.submit_entry(0, wdo(), Side::Buy, 1, 5.0, 100.0, Regime::TrendUp);
    off.on_trade(&trade(1, 5000.0));
    off.on_trade(&trade(2, 5020.0));
    assert_eq!(off.position().expect("open").stop.as_f64(), 4995.0);
}

#[test]
fn flatten_closes_at_the_last_price_and_cancels_pending() {
    let mut b = broker(0);
    b.submit_entry(0, wdo(), Side::Buy, 1, 5.0, 10.0, Regime::Range);
    b.on_trade(&trade(1, 5000.0));
    b.on_trade(&trade(2, 5003.0));
    let (_, trip) = b.flatten(3, ExitReason::SessionEnd).expect("flattened");
    assert_eq!((trip.exit_price.as_f64(), trip.exit_reason), (5003.0, ExitReason::SessionEnd));
    b.submit_entry(4, wdo(), Side::Buy, 1, 5.0, 10.0, Regime::Range);
    assert!(b.flatten(5, ExitReason::EndOfData).is_none());
    assert_eq!(b.exposure(), 0);
}
