//! The callbacks handed to the DLL. Each one copies and decodes its
//! arguments into a [`DllEvent`], pushes it to the [`Sink`] and returns: no
//! call into the DLL, no I/O, no allocation on the ring path, and a panic is
//! caught and counted instead of unwinding into the DLL's thread.
//!
//! The DLL's callbacks carry no user pointer, so their context is a process
//! global: one loaded ProfitDLL per process (the real DLL is a singleton too).
//! The functions are plain `fn` items, alive as long as the program, so the
//! pointers the DLL keeps can never dangle.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};

use tickhost_core::market::BookAction;
use tickhost_core::{AgentId, BookSide, BookUpdate, Price, Side, Symbol, Trade};

use super::abi::{
    BOOK_ADD, BOOK_DELETE, BOOK_DELETE_FROM, BOOK_EDIT, BOOK_FULL, BOOK_SIDE_BUY, BOOK_SIDE_SELL, NL_OK, PWideChar,
    TAssetIDRec, TC_IS_EDIT, TConnectorAssetIdentifier, TConnectorTrade, TranslateTradeFn,
};
use super::decode::{MAX_WIDE_LEN, parse_dll_date, symbol_from_utf16, system_time_ms, trade_type};
use super::events::{DailyBar, DllEvent, OfferUpdate, OrderStatus, OrderUpdate, TradeOrigin};
use super::sink::{FeedCounters, Shared, Sink};

pub(crate) struct Context {
    pub sink: Sink,
    pub utc_offset_minutes: i32,
    /// State and progress also go to the session thread, which acts on them.
    pub control: Sender<DllEvent>,
    pub translate: Option<TranslateTradeFn>,
    /// Time of the previous trade: the fallback for a trade whose date does not parse.
    last_ts_ms: Option<i64>,
}

impl Context {
    pub fn new(sink: Sink, utc_offset_minutes: i32, control: Sender<DllEvent>) -> Self {
        Self { sink, utc_offset_minutes, control, translate: None, last_ts_ms: None }
    }
}

static CONTEXT: Mutex<Option<Context>> = Mutex::new(None);

fn context() -> MutexGuard<'static, Option<Context>> {
    CONTEXT.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs the callbacks' context; `false` if one is installed already.
pub(crate) fn install(ctx: Context) -> bool {
    let mut slot = context();
    if slot.is_some() {
        return false;
    }
    *slot = Some(ctx);
    true
}

pub(crate) fn set_translate(f: TranslateTradeFn) {
    if let Some(ctx) = context().as_mut() {
        ctx.translate = Some(f);
    }
}

/// Removes the context (dropping the producer ends the consumer's stream).
pub(crate) fn uninstall() -> Option<Arc<Shared>> {
    context().take().map(|c| Arc::clone(&c.sink.shared))
}

/// Runs `f` with the context, catching any panic.
fn with_context(f: impl FnOnce(&mut Context)) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut guard = context();
        match guard.as_mut() {
            Some(ctx) => {
                // Counted here so a panic inside `f` still finds the counters.
                let shared = Arc::clone(&ctx.sink.shared);
                if catch_unwind(AssertUnwindSafe(|| f(ctx))).is_err() {
                    FeedCounters::bump(&shared.counters.callback_panics);
                }
            }
            None => {
                LATE.fetch_add(1, Ordering::Relaxed);
            }
        }
    }));
    // Only the lock itself could panic here; there is nothing to count it in.
    let _ = outcome;
}

/// Callbacks that arrived with no feed installed.
pub static LATE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The UTF-16 units of a `PWideChar` up to its NUL; `None` for null or a
/// string longer than [`MAX_WIDE_LEN`] (no NUL in sight: malformed).
fn wide<'a>(p: PWideChar) -> Option<&'a [u16]> {
    if p.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the DLL promises a NUL-terminated string valid for this call;
    // the scan stops at the NUL or at MAX_WIDE_LEN, whichever comes first,
    // so a malformed string is read no further than that bound.
    unsafe {
        while len < MAX_WIDE_LEN && *p.add(len) != 0 {
            len += 1;
        }
        if len == MAX_WIDE_LEN {
            return None;
        }
        Some(std::slice::from_raw_parts(p, len))
    }
}

fn asset_symbol(ctx: &Context, ticker: PWideChar) -> Option<Symbol> {
    let symbol = wide(ticker).and_then(symbol_from_utf16);
    if symbol.is_none() {
        FeedCounters::bump(&ctx.sink.shared.counters.malformed_strings);
        FeedCounters::bump(&ctx.sink.shared.counters.dropped_malformed);
    }
    symbol
}

impl Context {
    fn counters(&self) -> &FeedCounters {
        &self.sink.shared.counters
    }

    fn event_time(&mut self, date: PWideChar) -> Option<i64> {
        match wide(date).and_then(|d| parse_dll_date(d, self.utc_offset_minutes)) {
            Some(ts) => {
                self.last_ts_ms = Some(ts);
                Some(ts)
            }
            None => {
                FeedCounters::bump(&self.counters().bad_dates);
                self.last_ts_ms
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn trade(
        &mut self,
        ticker: PWideChar,
        ts_ms: Option<i64>,
        trade_number: u32,
        price: f64,
        volume: f64,
        quantity: i64,
        buy_agent: i32,
        sell_agent: i32,
        type_code: i32,
        is_edit: bool,
        origin: TradeOrigin,
    ) {
        let Some(symbol) = asset_symbol(self, ticker) else { return };
        let (Some(ts_ms), Some(price)) = (ts_ms, Price::from_f64(price)) else {
            FeedCounters::bump(&self.counters().dropped_malformed);
            return;
        };
        let (trade_type, known) = trade_type(type_code);
        if !known {
            FeedCounters::bump(&self.counters().unknown_trade_types);
        }
        let counters = self.counters();
        FeedCounters::bump(match origin {
            TradeOrigin::Live => &counters.trades,
            TradeOrigin::History => &counters.history_trades,
        });
        if is_edit {
            FeedCounters::bump(&counters.edits);
        }
        if origin == TradeOrigin::Live {
            self.sink.shared.last_live_trade_ms.store(ts_ms, Ordering::Relaxed);
        }
        let trade = Trade {
            symbol,
            ts_ms,
            trade_number: u64::from(trade_number),
            price,
            quantity,
            volume,
            buy_agent: AgentId(buy_agent as u32),
            sell_agent: AgentId(sell_agent as u32),
            trade_type,
            is_edit,
        };
        self.sink.push(DllEvent::Trade(trade, origin));
    }

    fn control_event(&mut self, event: DllEvent) {
        self.sink.push(event);
        // The session thread may be gone while the DLL winds down: nothing to tell then.
        let _ = self.control.send(event);
    }
}

pub(crate) extern "system" fn on_state(kind: i32, result: i32) {
    with_context(|ctx| ctx.control_event(DllEvent::State { kind, result }));
}

pub(crate) extern "system" fn on_new_trade(
    asset: TAssetIDRec,
    date: PWideChar,
    trade_number: u32,
    price: f64,
    volume: f64,
    quantity: i32,
    buy_agent: i32,
    sell_agent: i32,
    trade_type: i32,
    is_edit: u8,
) {
    with_context(|ctx| {
        let ts = ctx.event_time(date);
        ctx.trade(
            asset.ticker,
            ts,
            trade_number,
            price,
            volume,
            i64::from(quantity),
            buy_agent,
            sell_agent,
            trade_type,
            is_edit != 0,
            TradeOrigin::Live,
        );
    });
}

pub(crate) extern "system" fn on_history_trade(
    asset: TAssetIDRec,
    date: PWideChar,
    trade_number: u32,
    price: f64,
    volume: f64,
    quantity: i32,
    buy_agent: i32,
    sell_agent: i32,
    trade_type: i32,
) {
    with_context(|ctx| {
        let ts = ctx.event_time(date);
        ctx.trade(
            asset.ticker,
            ts,
            trade_number,
            price,
            volume,
            i64::from(quantity),
            buy_agent,
            sell_agent,
            trade_type,
            false,
            TradeOrigin::History,
        );
    });
}

fn v2_trade(asset: *const TConnectorAssetIdentifier, p_trade: *const c_void, flags: u32, origin: TradeOrigin) {
    with_context(|ctx| {
        FeedCounters::bump(&ctx.counters().v2_trades);
        if asset.is_null() || p_trade.is_null() {
            FeedCounters::bump(&ctx.counters().dropped_malformed);
            return;
        }
        // SAFETY: non-null, and the DLL guarantees the record is valid for this call.
        let ticker = unsafe { (*asset).ticker };
        let Some(translate) = ctx.translate else {
            FeedCounters::bump(&ctx.counters().translate_failures);
            return;
        };
        let mut out = TConnectorTrade { version: 0, ..TConnectorTrade::default() };
        // SAFETY: TranslateTrade reads the DLL's own trade pointer and writes
        // one TConnectorTrade into `out`, which lives on this stack frame.
        // It is the one DLL function the manual allows inside this callback:
        // it only decodes the pointer it was handed.
        let code = unsafe { translate(p_trade, &mut out) };
        if code != NL_OK {
            FeedCounters::bump(&ctx.counters().translate_failures);
            return;
        }
        let ts = system_time_ms(&out.trade_date, ctx.utc_offset_minutes).or_else(|| {
            FeedCounters::bump(&ctx.counters().bad_dates);
            ctx.last_ts_ms
        });
        if let Some(t) = ts {
            ctx.last_ts_ms = Some(t);
        }
        ctx.trade(
            ticker,
            ts,
            out.trade_number,
            out.price,
            out.volume,
            out.quantity,
            out.buy_agent,
            out.sell_agent,
            i32::from(out.trade_type),
            flags & TC_IS_EDIT != 0,
            origin,
        );
    });
}

pub(crate) extern "system" fn on_trade_v2(asset: *const TConnectorAssetIdentifier, p_trade: *const c_void, flags: u32) {
    v2_trade(asset, p_trade, flags, TradeOrigin::Live);
}

pub(crate) extern "system" fn on_history_trade_v2(
    asset: *const TConnectorAssetIdentifier,
    p_trade: *const c_void,
    flags: u32,
) {
    v2_trade(asset, p_trade, flags, TradeOrigin::History);
}

pub(crate) extern "system" fn on_progress(asset: TAssetIDRec, progress: i32) {
    with_context(|ctx| {
        if let Some(symbol) = asset_symbol(ctx, asset.ticker) {
            ctx.control_event(DllEvent::Progress { symbol, progress });
        }
    });
}

pub(crate) extern "system" fn on_daily(
    asset: TAssetIDRec,
    date: PWideChar,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    adjust: f64,
    max_limit: f64,
    min_limit: f64,
    vol_buyer: f64,
    vol_seller: f64,
    quantity: i32,
    trades: i32,
    open_contracts: i32,
    qty_buyer: i32,
    qty_seller: i32,
    trades_buyer: i32,
    trades_seller: i32,
) {
    with_context(|ctx| {
        let Some(symbol) = asset_symbol(ctx, asset.ticker) else { return };
        let Some(ts_ms) = ctx.event_time(date) else {
            FeedCounters::bump(&ctx.counters().dropped_malformed);
            return;
        };
        ctx.sink.push(DllEvent::Daily(DailyBar {
            symbol,
            ts_ms,
            open,
            high,
            low,
            close,
            volume,
            adjust,
            max_limit,
            min_limit,
            vol_buyer,
            vol_seller,
            quantity,
            trades,
            open_contracts,
            qty_buyer,
            qty_seller,
            trades_buyer,
            trades_seller,
        }));
    });
}

fn book_action(code: i32) -> Option<BookAction> {
    Some(match code {
        BOOK_ADD => BookAction::Add,
        BOOK_EDIT => BookAction::Edit,
        BOOK_DELETE => BookAction::Delete,
        BOOK_DELETE_FROM => BookAction::DeleteFrom,
        BOOK_FULL => BookAction::FullBook,
        _ => return None,
    })
}

fn book_side(code: i32) -> Option<BookSide> {
    match code {
        BOOK_SIDE_BUY => Some(BookSide::Bid),
        BOOK_SIDE_SELL => Some(BookSide::Ask),
        _ => None,
    }
}

pub(crate) extern "system" fn on_price_book(
    asset: TAssetIDRec,
    action: i32,
    position: i32,
    side: i32,
    qty: i32,
    count: i32,
    price: f64,
    _p_sell: *const c_void,
    _p_buy: *const c_void,
) {
    with_context(|ctx| {
        let Some(symbol) = asset_symbol(ctx, asset.ticker) else { return };
        let (Some(action), Some(side), Ok(position)) = (book_action(action), book_side(side), u32::try_from(position))
        else {
            FeedCounters::bump(&ctx.counters().dropped_malformed);
            return;
        };
        let ts_ms = ctx.last_ts_ms.unwrap_or(0);
        ctx.sink.push(DllEvent::PriceBook(BookUpdate {
            symbol,
            ts_ms,
            action,
            side,
            position,
            price: Price::from_f64(price).unwrap_or_default(),
            quantity: i64::from(qty),
            orders: count.max(0) as u32,
        }));
    });
}

pub(crate) extern "system" fn on_offer_book(
    asset: TAssetIDRec,
    action: i32,
    position: i32,
    side: i32,
    qty: i32,
    agent: i32,
    offer_id: i64,
    price: f64,
    has_price: u8,
    has_qty: u8,
    _has_date: u8,
    has_offer_id: u8,
    has_agent: u8,
    _date: PWideChar,
    _p_sell: *const c_void,
    _p_buy: *const c_void,
) {
    with_context(|ctx| {
        let Some(symbol) = asset_symbol(ctx, asset.ticker) else { return };
        let (Some(action), Some(side), Ok(position)) = (book_action(action), book_side(side), u32::try_from(position))
        else {
            FeedCounters::bump(&ctx.counters().dropped_malformed);
            return;
        };
        ctx.sink.push(DllEvent::OfferBook(OfferUpdate {
            symbol,
            action,
            side,
            position,
            price: if has_price != 0 { Price::from_f64(price) } else { None },
            quantity: (has_qty != 0).then_some(i64::from(qty)),
            agent: (has_agent != 0).then_some(agent),
            offer_id: (has_offer_id != 0).then_some(offer_id),
        }));
    });
}

pub(crate) extern "system" fn on_tiny_book(asset: TAssetIDRec, price: f64, qty: i32, side: i32) {
    with_context(|ctx| {
        let Some(symbol) = asset_symbol(ctx, asset.ticker) else { return };
        let (Some(side), Some(price)) = (book_side(side), Price::from_f64(price)) else {
            FeedCounters::bump(&ctx.counters().dropped_malformed);
            return;
        };
        ctx.sink.push(DllEvent::TinyBook { symbol, side, price, quantity: i64::from(qty) });
    });
}

pub(crate) extern "system" fn on_order_change(
    asset: TAssetIDRec,
    _broker: i32,
    qty: i32,
    traded_qty: i32,
    leaves_qty: i32,
    side: i32,
    price: f64,
    _stop_price: f64,
    avg_price: f64,
    profit_id: i64,
    _order_type: PWideChar,
    _account: PWideChar,
    _holder: PWideChar,
    _cl_ord_id: PWideChar,
    status: PWideChar,
    date: PWideChar,
    _text_message: PWideChar,
) {
    with_context(|ctx| {
        let Some(symbol) = asset_symbol(ctx, asset.ticker) else { return };
        let status = match wide(status) {
            Some(s) => OrderStatus::from_text(s),
            None => {
                FeedCounters::bump(&ctx.counters().malformed_strings);
                OrderStatus::Other
            }
        };
        let ts_ms = ctx.event_time(date).unwrap_or(0);
        ctx.sink.push(DllEvent::Order(OrderUpdate {
            symbol,
            profit_id,
            side: match side {
                1 => Some(Side::Buy),
                2 => Some(Side::Sell),
                _ => None,
            },
            quantity: i64::from(qty),
            traded_quantity: i64::from(traded_qty),
            leaves_quantity: i64::from(leaves_qty),
            price,
            avg_price,
            status,
            ts_ms,
        }));
    });
}

pub(crate) extern "system" fn on_order_history(
    _asset: TAssetIDRec,
    _broker: i32,
    _qty: i32,
    _traded_qty: i32,
    _leaves_qty: i32,
    _side: i32,
    _price: f64,
    _stop_price: f64,
    _avg_price: f64,
    _profit_id: i64,
    _order_type: PWideChar,
    _account: PWideChar,
    _holder: PWideChar,
    _cl_ord_id: PWideChar,
    _status: PWideChar,
    _date: PWideChar,
) {
    with_context(|ctx| FeedCounters::bump(&ctx.counters().ignored));
}

pub(crate) extern "system" fn on_account(_broker: i32, _name: PWideChar, _account: PWideChar, _holder: PWideChar) {
    with_context(|ctx| FeedCounters::bump(&ctx.counters().ignored));
}
