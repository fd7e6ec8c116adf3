use tickhost_core::Side;
use tickhost_core::risk::{OrderCheck, Refusal, RiskConfig, RiskEngine, TradingState};
use tickhost_core::time::{LocalTime, MS_PER_MINUTE, SessionClock};

fn at(day: u32, hour: u32, minute: u32) -> i64 {
    LocalTime { year: 2024, month: 1, day, hour, minute, second: 0, millisecond: 0 }
        .to_epoch_ms(-180)
        .expect("valid time")
}

fn entry(ts_ms: i64) -> OrderCheck {
    OrderCheck { ts_ms, side: Side::Buy, quantity: 1, position: 0, volatility: 0.0005 }
}

fn engine(config: RiskConfig) -> RiskEngine {
    RiskEngine::new(config, SessionClock::default()).expect("valid config")
}

fn relaxed() -> RiskConfig {
    RiskConfig { max_orders_per_minute: 100, max_trades_per_day: 100, ..RiskConfig::default() }
}

#[test]
fn refuses_outside_trading_hours() {
    let mut r = engine(relaxed());
    assert_eq!(r.check(&entry(at(8, 8, 59))), Err(Refusal::OutsideTradingHours));
    assert_eq!(r.check(&entry(at(8, 17, 45))), Err(Refusal::OutsideTradingHours));
    assert_eq!(r.check(&entry(at(8, 10, 0))), Ok(()));
    assert_eq!(r.refusals().get(Refusal::OutsideTradingHours), 2);
}

#[test]
fn one_position_at_a_time_and_max_position() {
    let mut r = engine(relaxed());
    let add = OrderCheck { position: 1, ..entry(at(8, 10, 0)) };
    assert_eq!(r.check(&add), Err(Refusal::PositionAlreadyOpen));

    let mut r = engine(RiskConfig { one_position_at_a_time: false, max_position: 2, ..relaxed() });
    assert_eq!(r.check(&OrderCheck { position: 1, ..entry(at(8, 10, 0)) }), Ok(()));
    assert_eq!(r.check(&OrderCheck { position: 2, ..entry(at(8, 10, 5)) }), Err(Refusal::MaxPosition));
    assert_eq!(r.refusals().get(Refusal::MaxPosition), 1);
}

#[test]
fn max_trades_per_day_resets_next_day() {
    let mut r = engine(RiskConfig { max_trades_per_day: 2, ..relaxed() });
    assert_eq!(r.check(&entry(at(8, 10, 0))), Ok(()));
    assert_eq!(r.check(&entry(at(8, 11, 0))), Ok(()));
    assert_eq!(r.check(&entry(at(8, 12, 0))), Err(Refusal::MaxTradesPerDay));
    assert_eq!(r.check(&entry(at(9, 10, 0))), Ok(()));
}

#[test]
fn daily_loss_limit_switches_to_reducing_until_the_next_day() {
    let mut r = engine(relaxed());
    // 5% of R$20,000.
    r.on_round_trip(at(8, 10, 0), -1_000.0);
    assert_eq!(r.state(), TradingState::Reducing);
    assert_eq!(r.check(&entry(at(8, 10, 5))), Err(Refusal::DailyLossLimit));
    // Exits are still allowed.
    let exit = OrderCheck { side: Side::Sell, position: 1, ..entry(at(8, 10, 6)) };
    assert_eq!(r.check(&exit), Ok(()));
    assert_eq!(r.check(&entry(at(9, 10, 0))), Ok(()));
    assert_eq!(r.state(), TradingState::Active);
}

#[test]
fn max_drawdown_halts_until_reset() {
    let mut r = engine(relaxed());
    r.on_equity(at(8, 10, 0), 21_000.0);
    r.on_equity(at(8, 11, 0), 18_900.0); // 10% below the 21,000 peak
    assert_eq!(r.state(), TradingState::Halted);
    assert_eq!(r.check(&entry(at(8, 11, 1))), Err(Refusal::MaxDrawdown));
    // A new day does not lift a halt; an operator does.
    assert_eq!(r.check(&entry(at(9, 10, 0))), Err(Refusal::MaxDrawdown));
    let exit = OrderCheck { side: Side::Sell, position: 1, ..entry(at(9, 10, 1)) };
    assert_eq!(r.check(&exit), Ok(()));
    r.reset_halt();
    assert_eq!(r.check(&entry(at(9, 10, 2))), Ok(()));
}

#[test]
fn order_rate_limit_over_a_rolling_minute() {
    let mut r = engine(RiskConfig { max_orders_per_minute: 2, ..relaxed() });
    let t0 = at(8, 10, 0);
    assert_eq!(r.check(&entry(t0)), Ok(()));
    assert_eq!(r.check(&entry(t0 + 10_000)), Ok(()));
    assert_eq!(r.check(&entry(t0 + 20_000)), Err(Refusal::RateLimit));
    assert_eq!(r.check(&entry(t0 + MS_PER_MINUTE)), Ok(()));
}

#[test]
fn consecutive_losses_pause_entries_for_the_cooldown() {
    let mut r = engine(RiskConfig { max_consecutive_losses: 3, loss_cooldown_minutes: 30, ..relaxed() });
    for m in 0..3 {
        r.on_round_trip(at(8, 10, m), -50.0);
    }
    assert_eq!(r.state(), TradingState::Reducing);
    assert_eq!(r.check(&entry(at(8, 10, 20))), Err(Refusal::ConsecutiveLosses));
    assert_eq!(r.check(&entry(at(8, 10, 33))), Ok(()));
    assert_eq!(r.state(), TradingState::Active);
}

#[test]
fn a_win_breaks_a_losing_streak() {
    let mut r = engine(RiskConfig { max_consecutive_losses: 3, ..relaxed() });
    r.on_round_trip(at(8, 10, 0), -50.0);
    r.on_round_trip(at(8, 10, 1), -50.0);
    r.on_round_trip(at(8, 10, 2), 80.0);
    r.on_round_trip(at(8, 10, 3), -50.0);
    assert_eq!(r.state(), TradingState::Active);
}

#[test]
fn extreme_volatility_refuses_entries() {
    let mut r = engine(relaxed());
    let wild = OrderCheck { volatility: 0.01, ..entry(at(8, 10, 0)) };
    assert_eq!(r.check(&wild), Err(Refusal::ExtremeVolatility));
    assert_eq!(r.refusals().get(Refusal::ExtremeVolatility), 1);
    assert_eq!(r.refusals().total(), 1);
}

#[test]
fn bad_config_is_refused_with_the_field_named() {
    let err =
        RiskEngine::new(RiskConfig { trading_start: "9h".into(), ..RiskConfig::default() }, SessionClock::default())
            .expect_err("bad time");
    assert!(err.to_string().contains("trading_start"), "{err}");
}
