//! The exported functions and the library's thread.
#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tickhost_core::time::LocalTime;
use tickhost_core::{Price, Side, Symbol, Trade};
use tickhost_feed::profit_dll::abi::*;
use tickhost_feed::profit_dll::decode::{MAX_WIDE_LEN, parse_dll_date, system_time_from_ms};
use tickhost_feed::profit_dll::probe_ns;

use crate::config::SimConfig;
use crate::market::Market;

const UTC_OFFSET: i32 = tickhost_core::time::B3_UTC_OFFSET_MINUTES;

#[derive(Clone, Copy)]
struct Callbacks {
    state: TStateCallback,
    new_trade: TNewTradeCallback,
    daily: TNewDailyCallback,
    price_book: TPriceBookCallback,
    offer_book: TOfferBookCallback,
    history_trade: THistoryTradeCallback,
    progress: TProgressCallback,
    tiny_book: TTinyBookCallback,
    order_change: Option<TOrderChangeCallback>,
    trade_v2: Option<TConnectorTradeCallback>,
    history_v2: Option<TConnectorTradeCallback>,
}

#[derive(Clone, Copy, Debug)]
enum Request {
    History { symbol: Symbol, start_ms: i64, end_ms: i64 },
    Order { id: i64, symbol: Symbol, side: Side, quantity: i64 },
}

struct Session {
    callbacks: Callbacks,
    full_login: bool,
    config: SimConfig,
    trades: Vec<Symbol>,
    price_books: Vec<Symbol>,
    offer_books: Vec<Symbol>,
    requests: VecDeque<Request>,
    /// The market-data link is up (subscriptions are accepted).
    connected: bool,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);
/// The market outlives a Finalize/Initialize cycle: a reconnecting host
/// finds it moved on, with the history of what it missed.
static MARKET: Mutex<Option<Market>> = Mutex::new(None);
static RUNNER: Mutex<Option<(JoinHandle<()>, Arc<AtomicBool>)>> = Mutex::new(None);
static CONFIG_TEXT: Mutex<Option<String>> = Mutex::new(None);
static INITS: AtomicU32 = AtomicU32::new(0);
static SUBSCRIBE_CALLS: AtomicU32 = AtomicU32::new(0);
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static NEXT_ORDER_ID: AtomicU64 = AtomicU64::new(1000);

fn lock<T>(m: &'static Mutex<T>) -> MutexGuard<'static, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads a host string (bounded, like the host does).
///
/// # Safety
/// `p` is null or points to NUL-terminated UTF-16 valid for the call.
unsafe fn read_wide(p: PWideChar) -> Option<Vec<u16>> {
    if p.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: the caller promises a NUL-terminated string; the scan is bounded.
    unsafe {
        while len < MAX_WIDE_LEN && *p.add(len) != 0 {
            len += 1;
        }
        (len < MAX_WIDE_LEN).then(|| std::slice::from_raw_parts(p, len).to_vec())
    }
}

fn wide_symbol(units: &[u16]) -> Option<Symbol> {
    tickhost_feed::profit_dll::decode::symbol_from_utf16(units)
}

fn sim_config() -> Result<SimConfig, String> {
    let text = lock(&CONFIG_TEXT).clone().or_else(|| std::env::var("PROFITDLL_SIM").ok()).unwrap_or_default();
    SimConfig::parse(&text)
}

#[allow(clippy::too_many_arguments)]
fn initialize(key: PWideChar, user: PWideChar, full_login: bool, callbacks: Callbacks) -> i32 {
    if lock(&RUNNER).is_some() {
        return NL_INTERNAL_ERROR;
    }
    let config = match sim_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("profitdll-sim: {e}");
            return NL_INVALID_ARGS;
        }
    };
    // SAFETY: the host passes NUL-terminated strings valid for this call.
    let (key, user) = unsafe { (read_wide(key), read_wide(user)) };
    if key.is_none() || user.is_none() {
        return NL_INVALID_ARGS;
    }
    {
        let mut market = lock(&MARKET);
        if market.is_none() {
            match Market::new(config.clone()) {
                Ok(m) => *market = Some(m),
                Err(e) => {
                    eprintln!("profitdll-sim: {e}");
                    return NL_INVALID_ARGS;
                }
            }
        }
    }
    let inits = INITS.fetch_add(1, Ordering::SeqCst) + 1;
    if config.init_error != 0 {
        return config.init_error;
    }
    *lock(&SESSION) = Some(Session {
        callbacks,
        full_login,
        config: config.clone(),
        trades: Vec::new(),
        price_books: Vec::new(),
        offer_books: Vec::new(),
        requests: VecDeque::new(),
        connected: false,
    });
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new().name("ConnectorThread".into()).spawn(move || run(config, inits, &stop))
    };
    match thread {
        Ok(t) => {
            *lock(&RUNNER) = Some((t, stop));
            NL_OK
        }
        Err(_) => NL_INTERNAL_ERROR,
    }
}

// ---------------------------------------------------------------- the thread

struct Strings {
    exchange: Vec<u16>,
    tickers: Vec<(Symbol, Vec<u16>)>,
}

impl Strings {
    fn ticker(&mut self, s: Symbol) -> *const u16 {
        if let Some(i) = self.tickers.iter().position(|(t, _)| *t == s) {
            return self.tickers[i].1.as_ptr();
        }
        self.tickers.push((s, tickhost_feed::profit_dll::decode::to_wide(s.as_str())));
        self.tickers.last().map_or(std::ptr::null(), |t| t.1.as_ptr())
    }

    fn asset(&mut self, s: Symbol) -> TAssetIDRec {
        TAssetIDRec { ticker: self.ticker(s), exchange: self.exchange.as_ptr(), feed: 0 }
    }
}

/// `DD/MM/YYYY HH:mm:SS.ZZZ` into a fixed buffer, no allocation per trade.
fn date_into(ts_ms: i64, buf: &mut [u16; 24]) {
    let t = LocalTime::from_epoch_ms(ts_ms, UTC_OFFSET);
    let mut i = 0;
    let mut put = |n: u32, width: usize, sep: Option<u8>| {
        for k in (0..width).rev() {
            buf[i] = u16::from(b'0') + ((n / 10u32.pow(k as u32)) % 10) as u16;
            i += 1;
        }
        if let Some(c) = sep {
            buf[i] = u16::from(c);
            i += 1;
        }
    };
    put(t.day, 2, Some(b'/'));
    put(t.month, 2, Some(b'/'));
    put(t.year as u32, 4, Some(b' '));
    put(t.hour, 2, Some(b':'));
    put(t.minute, 2, Some(b':'));
    put(t.second, 2, Some(b'.'));
    put(t.millisecond, 3, None);
    buf[23] = 0;
}

/// What `TranslateTrade` decodes: the V2 trade pointer points at one of these.
#[repr(C)]
struct V2Trade {
    magic: u32,
    trade: TConnectorTrade,
}
const V2_MAGIC: u32 = 0x5449_434B;

fn v2_record(t: &Trade, bad_date: bool) -> V2Trade {
    let mut trade_date = system_time_from_ms(t.ts_ms, UTC_OFFSET);
    if bad_date {
        trade_date.month = 13;
    }
    V2Trade {
        magic: V2_MAGIC,
        trade: TConnectorTrade {
            version: 0,
            trade_date,
            trade_number: t.trade_number as u32,
            price: t.price.as_f64(),
            quantity: t.quantity,
            volume: t.volume,
            buy_agent: t.buy_agent.0 as i32,
            sell_agent: t.sell_agent.0 as i32,
            trade_type: t.trade_type.code(),
        },
    }
}

#[derive(Default, Clone, Copy)]
struct DailyAcc {
    symbol: Option<Symbol>,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    vol_buyer: f64,
    vol_seller: f64,
    qty: i64,
    trades: i32,
    qty_buyer: i64,
    qty_seller: i64,
    trades_buyer: i32,
    trades_seller: i32,
}

struct Runner {
    cb: Callbacks,
    strings: Strings,
    date: [u16; 24],
    config: SimConfig,
    dailies: Vec<DailyAcc>,
    book_center: Vec<(Symbol, Price)>,
    pending_fills: Vec<Request>,
    history_out: VecDeque<(Symbol, Vec<Trade>, usize)>,
    rng: tickhost_core::sim::Rng,
    /// An unterminated string for the malformed-string fault.
    unterminated: Vec<u16>,
    bad_ticker: Vec<u16>,
    bad_date: Vec<u16>,
}

/// What the thread reads from the session each step, into reused buffers.
#[derive(Default)]
struct Snapshot {
    trades: Vec<Symbol>,
    price_books: Vec<Symbol>,
    offer_books: Vec<Symbol>,
    full_login: bool,
    request: Option<Request>,
}

/// The session's callbacks and subscriptions; `None` once finalised.
fn session_snapshot(into: &mut Snapshot) -> Option<Callbacks> {
    let mut guard = lock(&SESSION);
    let s = guard.as_mut()?;
    into.request = s.requests.pop_front();
    into.full_login = s.full_login;
    for (dst, src) in [
        (&mut into.trades, &s.trades),
        (&mut into.price_books, &s.price_books),
        (&mut into.offer_books, &s.offer_books),
    ] {
        dst.clear();
        dst.extend_from_slice(src);
    }
    Some(s.callbacks)
}

fn set_connected(connected: bool) {
    if let Some(s) = lock(&SESSION).as_mut() {
        s.connected = connected;
        if !connected {
            // Like the real DLL: subscriptions go with the connection.
            s.trades.clear();
            s.price_books.clear();
            s.offer_books.clear();
        }
    }
}

fn run(config: SimConfig, init_number: u32, stop: &AtomicBool) {
    let mut snap = Snapshot::default();
    let Some(cb) = session_snapshot(&mut snap) else { return };
    let full_login = snap.full_login;
    let mut r = Runner {
        cb,
        strings: Strings { exchange: tickhost_feed::profit_dll::decode::to_wide("F"), tickers: Vec::new() },
        date: [0; 24],
        dailies: Vec::new(),
        book_center: Vec::new(),
        pending_fills: Vec::new(),
        history_out: VecDeque::new(),
        rng: tickhost_core::sim::Rng::new(config.seed ^ 0xB00C),
        unterminated: vec![u16::from(b'W'); MAX_WIDE_LEN + 44],
        bad_ticker: "WDOÇFUT\0".encode_utf16().collect(),
        bad_date: "99/99/2024 25:61:00.000\0".encode_utf16().collect(),
        config,
    };
    if r.config.activation != ACTIVATION_VALID {
        (r.cb.state)(CONN_ACTIVATION, r.config.activation);
        return;
    }
    let login = if init_number <= r.config.login_fail_times { r.config.login } else { LOGIN_OK };
    (r.cb.state)(CONN_LOGIN, login);
    if login != LOGIN_OK {
        // The real DLL stays silent after a refused login: the host decides.
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        return;
    }
    if full_login {
        (r.cb.state)(CONN_ROUTING, ROUTING_CONNECTED);
        (r.cb.state)(CONN_ROUTING, ROUTING_BROKER_CONNECTED);
    }
    (r.cb.state)(CONN_MARKET_DATA, MARKET_CONNECTING);
    set_connected(true);
    (r.cb.state)(CONN_MARKET_DATA, MARKET_CONNECTED);

    let mut outage_left = 0u64;
    let mut paced_from: Option<(Instant, i64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(cb) = session_snapshot(&mut snap) else { return };
        r.cb = cb;
        if let Some(request) = snap.request.take() {
            r.on_request(request);
            continue;
        }
        r.history_chunk();
        if snap.trades.is_empty() && outage_left == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let trade = lock(&MARKET).as_mut().and_then(Market::next_trade);
        let Some(trade) = trade else {
            // The session is over: orders still fill, at the last price.
            let last = lock(&MARKET).as_ref().and_then(|m| m.last_trade());
            if let Some(t) = last {
                r.fill_orders(&t);
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if r.config.speed > 0.0 {
            let (wall, market) = *paced_from.get_or_insert((Instant::now(), trade.ts_ms));
            let due = wall + Duration::from_secs_f64(((trade.ts_ms - market).max(0) as f64 / r.config.speed) / 1e3);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        if outage_left > 0 {
            outage_left -= 1;
            if outage_left == 0 {
                (r.cb.state)(CONN_MARKET_DATA, MARKET_CONNECTING);
                set_connected(true);
                (r.cb.state)(CONN_MARKET_DATA, MARKET_CONNECTED);
            }
            continue;
        }
        if !snap.trades.contains(&trade.symbol) {
            continue;
        }
        let n = DELIVERED.fetch_add(1, Ordering::SeqCst) + 1;
        r.deliver_live(&trade, n);
        r.fill_orders(&trade);
        if snap.price_books.contains(&trade.symbol) {
            r.book(&trade, snap.offer_books.contains(&trade.symbol));
        }
        r.daily(&trade, n);
        let crash_due = |c: &SimConfig| match &c.crash_once {
            Some(marker) => !marker.exists() && std::fs::write(marker, b"crashed").is_ok(),
            None => true,
        };
        if r.config.crash_at > 0 && n >= r.config.crash_at && crash_due(&r.config) {
            eprintln!("profitdll-sim: crash injected after {n} trades");
            std::process::abort();
        }
        if r.config.disconnect_at > 0 && n.is_multiple_of(r.config.disconnect_at) {
            set_connected(false);
            (r.cb.state)(CONN_MARKET_DATA, MARKET_DISCONNECTED);
            outage_left = r.config.outage.max(1);
        }
        if r.config.drop_at > 0 && n == r.config.drop_at {
            set_connected(false);
            (r.cb.state)(CONN_MARKET_DATA, MARKET_DISCONNECTED);
            // The market goes on; the link comes back only with a new initialisation.
            outage_left = u64::MAX;
        }
    }
}

impl Runner {
    fn deliver_live(&mut self, t: &Trade, n: u64) {
        let probed;
        let t = if self.config.probe {
            probed = Trade { volume: probe_ns() as f64, ..*t };
            &probed
        } else {
            t
        };
        let every = self.config.malformed_every;
        let fault = if every > 0 && n.is_multiple_of(every) { Some((n / every) % 4) } else { None };
        let ticker = match fault {
            Some(2) => self.bad_ticker.as_ptr(),
            Some(3) => self.unterminated.as_ptr(),
            _ => self.strings.ticker(t.symbol),
        };
        let asset = TAssetIDRec { ticker, exchange: self.strings.exchange.as_ptr(), feed: 0 };
        if let Some(v2) = self.cb.trade_v2 {
            let record = v2_record(t, matches!(fault, Some(0 | 1)));
            let id = TConnectorAssetIdentifier { version: 0, ticker, exchange: asset.exchange, feed_type: 0 };
            let flags = if t.is_edit { TC_IS_EDIT } else { 0 };
            v2(&id, (&record as *const V2Trade).cast::<c_void>(), flags);
            return;
        }
        date_into(t.ts_ms, &mut self.date);
        let date = match fault {
            Some(0) => std::ptr::null(),
            Some(1) => self.bad_date.as_ptr(),
            _ => self.date.as_ptr(),
        };
        (self.cb.new_trade)(
            asset,
            date,
            t.trade_number as u32,
            t.price.as_f64(),
            t.volume,
            t.quantity as i32,
            t.buy_agent.0 as i32,
            t.sell_agent.0 as i32,
            i32::from(t.trade_type.code()),
            u8::from(t.is_edit),
        );
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::History { symbol, start_ms, end_ms } => {
                let trades = lock(&MARKET).as_ref().map(|m| m.history(symbol, start_ms, end_ms)).unwrap_or_default();
                self.history_out.push_back((symbol, trades, 0));
            }
            Request::Order { .. } => {
                let status = if self.config.reject_orders { "Rejected" } else { "New" };
                self.order_callback(&request, status, 0, 0.0);
                if !self.config.reject_orders {
                    self.pending_fills.push(request);
                }
            }
        }
    }

    /// Delivers the next chunk of a history answer. Like the real DLL, a
    /// history answer is spread over time, interleaved with live trades.
    fn history_chunk(&mut self) {
        let Some((symbol, trades, next)) = self.history_out.pop_front() else { return };
        let asset = self.strings.asset(symbol);
        let count = trades.len();
        let end = (next + 16).min(count);
        for (i, t) in trades.iter().enumerate().take(end).skip(next) {
            if let Some(v2) = self.cb.history_v2 {
                let record = v2_record(t, false);
                let id = TConnectorAssetIdentifier {
                    version: 0,
                    ticker: asset.ticker,
                    exchange: asset.exchange,
                    feed_type: 0,
                };
                let flags = if i + 1 == count { TC_LAST_PACKET } else { 0 };
                v2(&id, (&record as *const V2Trade).cast::<c_void>(), flags);
            } else {
                date_into(t.ts_ms, &mut self.date);
                (self.cb.history_trade)(
                    asset,
                    self.date.as_ptr(),
                    t.trade_number as u32,
                    t.price.as_f64(),
                    t.volume,
                    t.quantity as i32,
                    t.buy_agent.0 as i32,
                    t.sell_agent.0 as i32,
                    i32::from(t.trade_type.code()),
                );
            }
        }
        if end < count {
            (self.cb.progress)(asset, ((end * 100) / count).clamp(1, 99) as i32);
            self.history_out.push_front((symbol, trades, end));
        } else {
            (self.cb.progress)(asset, 100);
            (self.cb.progress)(asset, PROGRESS_DONE);
        }
    }

    fn order_callback(&mut self, request: &Request, status: &str, traded: i64, avg_price: f64) {
        let Request::Order { id, symbol, side, quantity } = *request else { return };
        let Some(cb) = self.cb.order_change else { return };
        let asset = self.strings.asset(symbol);
        let status = tickhost_feed::profit_dll::decode::to_wide(status);
        let empty = [0u16];
        let text = tickhost_feed::profit_dll::decode::to_wide("simulated");
        date_into(
            lock(&MARKET)
                .as_ref()
                .and_then(|m| m.history(symbol, i64::MIN, i64::MAX).last().map(|t| t.ts_ms))
                .unwrap_or(0),
            &mut self.date,
        );
        cb(
            asset,
            0,
            quantity as i32,
            traded as i32,
            (quantity - traded) as i32,
            match side {
                Side::Buy => 1,
                Side::Sell => 2,
            },
            avg_price,
            -1.0,
            avg_price,
            id,
            empty.as_ptr(),
            empty.as_ptr(),
            empty.as_ptr(),
            empty.as_ptr(),
            status.as_ptr(),
            self.date.as_ptr(),
            text.as_ptr(),
        );
    }

    fn fill_orders(&mut self, t: &Trade) {
        if self.pending_fills.is_empty() {
            return;
        }
        let fills: Vec<Request> = std::mem::take(&mut self.pending_fills);
        for request in fills {
            if let Request::Order { symbol, quantity, .. } = request
                && symbol == t.symbol
            {
                self.order_callback(&request, "Filled", quantity, t.price.as_f64());
            } else {
                self.pending_fills.push(request);
            }
        }
    }

    fn book(&mut self, t: &Trade, offers: bool) {
        let tick = if t.symbol.as_str().starts_with("WIN") { 5.0 } else { 0.5 };
        let asset = self.strings.asset(t.symbol);
        let null = std::ptr::null::<c_void>();
        let moved = match self.book_center.iter_mut().find(|(s, _)| *s == t.symbol) {
            Some((_, p)) if *p == t.price => false,
            Some((_, p)) => {
                *p = t.price;
                true
            }
            None => {
                self.book_center.push((t.symbol, t.price));
                true
            }
        };
        let px = t.price.as_f64();
        if moved {
            for side in [BOOK_SIDE_BUY, BOOK_SIDE_SELL] {
                (self.cb.price_book)(asset, BOOK_FULL, 0, side, 0, 0, 0.0, null, null);
                // Worst level first, each new one the best so far (position 0).
                for level in (0..5).rev() {
                    let offset = tick * f64::from(level + 1) - tick / 2.0 * f64::from(u8::from(side == BOOK_SIDE_BUY));
                    let price = if side == BOOK_SIDE_BUY { px - offset + tick / 2.0 } else { px + offset - tick / 2.0 };
                    let price = if side == BOOK_SIDE_BUY { price.min(px) } else { price.max(px + tick) };
                    let qty = self.rng.range(5, 200) as i32;
                    (self.cb.price_book)(
                        asset,
                        BOOK_ADD,
                        0,
                        side,
                        qty,
                        self.rng.range(1, 20) as i32,
                        price,
                        null,
                        null,
                    );
                }
                (self.cb.tiny_book)(asset, if side == BOOK_SIDE_BUY { px } else { px + tick }, 10, side);
                if offers {
                    (self.cb.offer_book)(
                        asset,
                        BOOK_FULL,
                        0,
                        side,
                        0,
                        0,
                        0,
                        0.0,
                        0,
                        0,
                        0,
                        0,
                        0,
                        std::ptr::null(),
                        null,
                        null,
                    );
                    for k in 0..3 {
                        let price = if side == BOOK_SIDE_BUY {
                            px - tick * f64::from(2 - k)
                        } else {
                            px + tick * f64::from(3 - k)
                        };
                        date_into(t.ts_ms, &mut self.date);
                        (self.cb.offer_book)(
                            asset,
                            BOOK_ADD,
                            0,
                            side,
                            self.rng.range(1, 50) as i32,
                            self.rng.range(1, 100) as i32,
                            (t.trade_number * 10 + k as u64) as i64,
                            price,
                            1,
                            1,
                            1,
                            1,
                            1,
                            self.date.as_ptr(),
                            null,
                            null,
                        );
                    }
                }
            }
        } else if self.config.book_every > 0 && t.trade_number.is_multiple_of(self.config.book_every) {
            let side = if self.rng.chance(0.5) { BOOK_SIDE_BUY } else { BOOK_SIDE_SELL };
            let position = self.rng.range(0, 4) as i32;
            let qty = self.rng.range(5, 200) as i32;
            (self.cb.price_book)(asset, BOOK_EDIT, position, side, qty, self.rng.range(1, 20) as i32, 0.0, null, null);
        }
    }

    fn daily(&mut self, t: &Trade, n: u64) {
        let px = t.price.as_f64();
        let i = match self.dailies.iter().position(|d| d.symbol == Some(t.symbol)) {
            Some(i) => i,
            None => {
                self.dailies.push(DailyAcc {
                    symbol: Some(t.symbol),
                    open: px,
                    high: px,
                    low: px,
                    ..DailyAcc::default()
                });
                self.dailies.len() - 1
            }
        };
        let d = &mut self.dailies[i];
        d.high = d.high.max(px);
        d.low = d.low.min(px);
        d.close = px;
        d.volume += t.volume;
        d.qty += t.quantity;
        d.trades += 1;
        match t.aggressor() {
            Some(Side::Buy) => {
                d.vol_buyer += t.volume;
                d.qty_buyer += t.quantity;
                d.trades_buyer += 1;
            }
            Some(Side::Sell) => {
                d.vol_seller += t.volume;
                d.qty_seller += t.quantity;
                d.trades_seller += 1;
            }
            None => {}
        }
        let d = *d;
        if self.config.daily_every == 0 || !n.is_multiple_of(self.config.daily_every) {
            return;
        }
        let asset = self.strings.asset(t.symbol);
        date_into(t.ts_ms, &mut self.date);
        (self.cb.daily)(
            asset,
            self.date.as_ptr(),
            d.open,
            d.high,
            d.low,
            d.close,
            d.volume,
            d.close,
            d.open * 1.06,
            d.open * 0.94,
            d.vol_buyer,
            d.vol_seller,
            d.qty as i32,
            d.trades,
            0,
            d.qty_buyer as i32,
            d.qty_seller as i32,
            d.trades_buyer,
            d.trades_seller,
        );
    }
}

// ---------------------------------------------------------------- exports

/// # Safety
/// Strings are NUL-terminated UTF-16 valid for the call; callbacks have the ABI's signatures.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn DLLInitializeLogin(
    key: PWideChar,
    user: PWideChar,
    _password: PWideChar,
    state: TStateCallback,
    _history: THistoryCallback,
    order_change: TOrderChangeCallback,
    _account: TAccountCallback,
    new_trade: TNewTradeCallback,
    daily: TNewDailyCallback,
    price_book: TPriceBookCallback,
    offer_book: TOfferBookCallback,
    history_trade: THistoryTradeCallback,
    progress: TProgressCallback,
    tiny_book: TTinyBookCallback,
) -> i32 {
    let callbacks = Callbacks {
        state,
        new_trade,
        daily,
        price_book,
        offer_book,
        history_trade,
        progress,
        tiny_book,
        order_change: Some(order_change),
        trade_v2: None,
        history_v2: None,
    };
    initialize(key, user, true, callbacks)
}

/// # Safety
/// As [`DLLInitializeLogin`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "system" fn DLLInitializeMarketLogin(
    key: PWideChar,
    user: PWideChar,
    _password: PWideChar,
    state: TStateCallback,
    new_trade: TNewTradeCallback,
    daily: TNewDailyCallback,
    price_book: TPriceBookCallback,
    offer_book: TOfferBookCallback,
    history_trade: THistoryTradeCallback,
    progress: TProgressCallback,
    tiny_book: TTinyBookCallback,
) -> i32 {
    let callbacks = Callbacks {
        state,
        new_trade,
        daily,
        price_book,
        offer_book,
        history_trade,
        progress,
        tiny_book,
        order_change: None,
        trade_v2: None,
        history_v2: None,
    };
    initialize(key, user, false, callbacks)
}

/// # Safety
/// No arguments; safe to call from any thread but a callback.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn DLLFinalize() -> i32 {
    let runner = lock(&RUNNER).take();
    let Some((thread, stop)) = runner else { return NL_NOT_INITIALIZED };
    stop.store(true, Ordering::Relaxed);
    let _ = thread.join();
    *lock(&SESSION) = None;
    NL_OK
}

fn ticker_call(ticker: PWideChar, exchange: PWideChar, f: impl FnOnce(&mut Session, Symbol) -> i32) -> i32 {
    // SAFETY: the host passes NUL-terminated strings valid for this call.
    let (ticker, exchange) = unsafe { (read_wide(ticker), read_wide(exchange)) };
    let (Some(symbol), Some(exchange)) = (ticker.as_deref().and_then(wide_symbol), exchange) else {
        return NL_INVALID_ARGS;
    };
    // Futures are "F", stocks "B": "BMF" is refused like the real DLL does.
    if exchange != [u16::from(b'F')] && exchange != [u16::from(b'B')] {
        return NL_INVALID_ARGS;
    }
    let mut guard = lock(&SESSION);
    let Some(session) = guard.as_mut() else { return NL_NOT_INITIALIZED };
    f(session, symbol)
}

fn subscribe(list: fn(&mut Session) -> &mut Vec<Symbol>, ticker: PWideChar, exchange: PWideChar) -> i32 {
    ticker_call(ticker, exchange, |s, symbol| {
        if !s.connected {
            return NL_WAITING_SERVER;
        }
        let list = list(s);
        if !list.contains(&symbol) {
            list.push(symbol);
        }
        if let Some(m) = lock(&MARKET).as_mut() {
            m.add_symbol(symbol);
        }
        NL_OK
    })
}

fn unsubscribe(list: fn(&mut Session) -> &mut Vec<Symbol>, ticker: PWideChar, exchange: PWideChar) -> i32 {
    ticker_call(ticker, exchange, |s, symbol| {
        list(s).retain(|x| *x != symbol);
        NL_OK
    })
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SubscribeTicker(ticker: PWideChar, exchange: PWideChar) -> i32 {
    let failing = lock(&SESSION).as_ref().map_or(0, |s| s.config.subscribe_errors);
    if SUBSCRIBE_CALLS.fetch_add(1, Ordering::SeqCst) < failing {
        return NL_INTERNAL_ERROR;
    }
    subscribe(|s| &mut s.trades, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn UnsubscribeTicker(ticker: PWideChar, exchange: PWideChar) -> i32 {
    unsubscribe(|s| &mut s.trades, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SubscribePriceBook(ticker: PWideChar, exchange: PWideChar) -> i32 {
    subscribe(|s| &mut s.price_books, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn UnsubscribePriceBook(ticker: PWideChar, exchange: PWideChar) -> i32 {
    unsubscribe(|s| &mut s.price_books, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SubscribeOfferBook(ticker: PWideChar, exchange: PWideChar) -> i32 {
    subscribe(|s| &mut s.offer_books, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn UnsubscribeOfferBook(ticker: PWideChar, exchange: PWideChar) -> i32 {
    unsubscribe(|s| &mut s.offer_books, ticker, exchange)
}

/// # Safety
/// NUL-terminated UTF-16 strings valid for the call; dates `DD/MM/YYYY HH:mm:SS`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn GetHistoryTrades(
    ticker: PWideChar,
    exchange: PWideChar,
    start: PWideChar,
    end: PWideChar,
) -> i32 {
    // SAFETY: the host passes NUL-terminated strings valid for this call.
    let (start, end) = unsafe { (read_wide(start), read_wide(end)) };
    let parse = |d: Option<Vec<u16>>| d.and_then(|d| parse_dll_date(&d, UTC_OFFSET));
    let (Some(start_ms), Some(end_ms)) = (parse(start), parse(end)) else { return NL_INVALID_ARGS };
    ticker_call(ticker, exchange, |s, symbol| {
        if s.config.history_error {
            return NL_INTERNAL_ERROR;
        }
        // Dates have whole seconds: the end second is included whole.
        s.requests.push_back(Request::History { symbol, start_ms, end_ms: end_ms + 999 });
        NL_OK
    })
}

/// # Safety
/// `order` is null or a valid `TConnectorSendOrder` whose strings are valid for the call.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SendOrder(order: *const TConnectorSendOrder) -> i64 {
    if order.is_null() {
        return i64::from(NL_INVALID_ARGS);
    }
    // SAFETY: non-null, valid for the call (the caller's promise).
    let o = unsafe { *order };
    // SAFETY: as above, for its strings.
    let ticker = unsafe { read_wide(o.asset.ticker) };
    let Some(symbol) = ticker.as_deref().and_then(wide_symbol) else { return i64::from(NL_INVALID_ARGS) };
    let side = match o.side {
        ORDER_SIDE_BUY => Side::Buy,
        ORDER_SIDE_SELL => Side::Sell,
        _ => return i64::from(NL_INVALID_ARGS),
    };
    if o.quantity <= 0 || !matches!(o.order_type, ORDER_TYPE_MARKET | ORDER_TYPE_LIMIT | ORDER_TYPE_STOP_LIMIT) {
        return i64::from(NL_INVALID_ARGS);
    }
    let mut guard = lock(&SESSION);
    let Some(s) = guard.as_mut() else { return i64::from(NL_NOT_INITIALIZED) };
    if !s.full_login {
        return i64::from(NL_MARKET_ONLY);
    }
    let id = NEXT_ORDER_ID.fetch_add(1, Ordering::SeqCst) as i64;
    s.requests.push_back(Request::Order { id, symbol, side, quantity: o.quantity });
    id
}

/// # Safety
/// `callback` has the V2 trade-callback signature.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SetTradeCallbackV2(callback: TConnectorTradeCallback) -> i32 {
    match lock(&SESSION).as_mut() {
        Some(s) => {
            s.callbacks.trade_v2 = Some(callback);
            NL_OK
        }
        None => NL_NOT_INITIALIZED,
    }
}

/// # Safety
/// `callback` has the V2 trade-callback signature.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SetHistoryTradeCallbackV2(callback: TConnectorTradeCallback) -> i32 {
    match lock(&SESSION).as_mut() {
        Some(s) => {
            s.callbacks.history_v2 = Some(callback);
            NL_OK
        }
        None => NL_NOT_INITIALIZED,
    }
}

/// # Safety
/// `p_trade` is the pointer a V2 trade callback received (valid during that
/// callback); `out` points to a writable `TConnectorTrade`.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn TranslateTrade(p_trade: *const c_void, out: *mut TConnectorTrade) -> i32 {
    if p_trade.is_null() || out.is_null() {
        return NL_INVALID_ARGS;
    }
    // SAFETY: the pointer came from this library's V2 callback (a V2Trade) and is valid during it.
    let record = unsafe { &*p_trade.cast::<V2Trade>() };
    if record.magic != V2_MAGIC {
        return NL_INVALID_ARGS;
    }
    // SAFETY: `out` is writable (the caller's promise).
    unsafe {
        if (*out).version != 0 {
            return NL_INTERNAL_ERROR + 12; // NL_VERSION_NOT_SUPPORTED
        }
        *out = record.trade;
    }
    NL_OK
}

/// Not part of ProfitDLL: sets the simulator's configuration (same syntax
/// as `PROFITDLL_SIM`) and resets its market, for tests.
///
/// # Safety
/// `config` is null (back to the environment) or NUL-terminated UTF-16.
#[unsafe(no_mangle)]
pub unsafe extern "system" fn SimConfigure(config: PWideChar) -> i32 {
    if lock(&RUNNER).is_some() {
        return NL_INTERNAL_ERROR;
    }
    let text = if config.is_null() {
        None
    } else {
        // SAFETY: the caller's promise; the read is bounded.
        match unsafe { read_wide(config) } {
            Some(units) => Some(String::from_utf16_lossy(&units)),
            None => return NL_INVALID_ARGS,
        }
    };
    if let Some(t) = &text
        && let Err(e) = SimConfig::parse(t)
    {
        eprintln!("profitdll-sim: {e}");
        return NL_INVALID_ARGS;
    }
    *lock(&CONFIG_TEXT) = text;
    *lock(&MARKET) = None;
    INITS.store(0, Ordering::SeqCst);
    SUBSCRIBE_CALLS.store(0, Ordering::SeqCst);
    DELIVERED.store(0, Ordering::SeqCst);
    NL_OK
}

/// Not part of ProfitDLL: trades the simulated market made so far (delivered or not).
#[unsafe(no_mangle)]
pub extern "system" fn SimGeneratedTrades() -> i64 {
    lock(&MARKET).as_ref().map_or(0, |m| m.generated as i64)
}
