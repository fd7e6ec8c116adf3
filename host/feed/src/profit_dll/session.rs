//! The session thread: the only thread that calls into the DLL. It
//! initialises, subscribes, follows the state callback (reconnect with
//! back-off, resubscribe, backfill the gap with `GetHistoryTrades`), and
//! sends the engine's orders with `SendOrder`.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tickhost_core::time::{LocalTime, MS_PER_SECOND};
use tickhost_core::{Side, Symbol};

use super::abi::{self, NL_OK, TConnectorAccountIdentifier, TConnectorAssetIdentifier, TConnectorSendOrder};
use super::callbacks::{self, Context};
use super::decode::{format_dll_date, to_wide};
use super::events::DllEvent;
use super::library::ProfitLibrary;
use super::sink::{self, FeedCounters, Shared};
use super::stream::{DllStream, Notice};
use super::{DllConfig, DllError, LoginFailure, LoginMode, TradeCallbackStyle};

/// An order for the DLL, from the engine (after the risk engine).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderRequest {
    /// The engine's order id; fills come back tagged with it.
    pub order_id: u64,
    pub symbol: Symbol,
    pub side: Side,
    pub quantity: i64,
    /// `None`: a market order.
    pub limit_price: Option<f64>,
}

/// The engine's end of the order ring. `send` never blocks.
#[derive(Debug)]
pub struct OrderSender {
    producer: rtrb::Producer<OrderRequest>,
}

impl OrderSender {
    /// `Err` gives the order back when the ring is full (the caller refuses it).
    pub fn send(&mut self, order: OrderRequest) -> Result<(), OrderRequest> {
        self.producer.push(order).map_err(|rtrb::PushError::Full(o)| o)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Starting,
    Connected,
    Disconnected,
    Failed,
    Stopped,
}

/// What the session did; a copy is readable at any time.
#[derive(Clone, Debug, Default)]
pub struct SessionStatus {
    pub phase: Phase,
    pub logged_in: bool,
    pub routing: Option<i32>,
    pub failure: Option<LoginFailure>,
    pub last_error: Option<String>,
    pub initializations: u32,
    pub disconnects: u32,
    pub subscribes: u32,
    pub subscribe_errors: u32,
    pub backfills_requested: u32,
    pub backfills_completed: u32,
    pub backfills_abandoned: u32,
    pub orders_sent: u64,
    pub orders_refused: u64,
}

type StatusCell = Arc<(Mutex<SessionStatus>, Condvar)>;

fn update(status: &StatusCell, f: impl FnOnce(&mut SessionStatus)) {
    let mut s = status.0.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut s);
    status.1.notify_all();
}

/// A running ProfitDLL feed. Dropping it finalises the DLL and ends the stream.
#[derive(Debug)]
pub struct DllFeed {
    thread: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    status: StatusCell,
    shared: Arc<Shared>,
}

impl DllFeed {
    /// Loads the library, installs the callbacks, initialises (market or
    /// full login) and starts the session thread. Login results arrive
    /// later through the state callback: [`DllFeed::wait_ready`] waits for them.
    pub fn start(config: DllConfig) -> Result<(DllFeed, DllStream, OrderSender), DllError> {
        config.validate()?;
        let lib = ProfitLibrary::load(&config.library)?;
        let (sink, receiver) = sink::channel(config.sink);
        let shared = Arc::clone(&sink.shared);
        let (control_tx, control_rx) = mpsc::channel();
        if !callbacks::install(Context::new(sink, config.utc_offset_minutes, control_tx)) {
            return Err(DllError::AlreadyRunning);
        }
        let (notice_tx, notice_rx) = rtrb::RingBuffer::new(1024);
        let (order_tx, order_rx) = rtrb::RingBuffer::new(256);
        let status: StatusCell = Arc::new((Mutex::new(SessionStatus::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut session =
            Session::new(lib, config.clone(), Arc::clone(&status), Arc::clone(&shared), notice_tx, order_rx);
        if let Err(e) = session.initialize() {
            callbacks::uninstall();
            return Err(e);
        }
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new().name("profitdll-session".into()).spawn(move || session.run(&control_rx, &stop))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                callbacks::uninstall();
                return Err(DllError::Thread(e));
            }
        };
        let stream = DllStream::new(receiver, notice_rx, &config);
        Ok((DllFeed { thread: Some(thread), stop, status, shared }, stream, OrderSender { producer: order_tx }))
    }

    /// Waits until market data is connected, a login is refused, or `timeout`.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), DllError> {
        let deadline = Instant::now() + timeout;
        let mut s = self.status.0.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match s.phase {
                Phase::Connected => return Ok(()),
                Phase::Failed => {
                    return Err(match s.failure {
                        Some(f) => DllError::Login(f),
                        None => DllError::NotReady(timeout, s.last_error.clone().unwrap_or_default()),
                    });
                }
                _ => {}
            }
            let now = Instant::now();
            if now >= deadline {
                let last = s.last_error.clone().unwrap_or_else(|| format!("{:?}", s.phase));
                return Err(DllError::NotReady(timeout, last));
            }
            s = self.status.1.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    /// Waits until `pred` holds for the status, or `timeout`; returns the last status.
    pub fn wait_status(&self, timeout: Duration, pred: impl Fn(&SessionStatus) -> bool) -> SessionStatus {
        let deadline = Instant::now() + timeout;
        let mut s = self.status.0.lock().unwrap_or_else(|p| p.into_inner());
        while !pred(&s) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self.status.1.wait_timeout(s, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        s.clone()
    }

    pub fn status(&self) -> SessionStatus {
        self.status.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn counters(&self) -> &FeedCounters {
        &self.shared.counters
    }

    /// Finalises the DLL and waits for the session thread; the stream then finishes.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // A panic in the session thread was already reported through its status.
            let _ = t.join();
        }
    }
}

impl Drop for DllFeed {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Session {
    lib: ProfitLibrary,
    config: DllConfig,
    key: Vec<u16>,
    user: Vec<u16>,
    password: Vec<u16>,
    exchange: Vec<u16>,
    tickers: Vec<(Vec<u16>, bool)>,
    status: StatusCell,
    shared: Arc<Shared>,
    notices: rtrb::Producer<Notice>,
    orders: rtrb::Consumer<OrderRequest>,
    connected: bool,
    /// Down since the last connection: the next connection answers with a backfill.
    had_gap: bool,
    gap_from_ms: Option<i64>,
    down_since: Option<Instant>,
    next_attempt: Option<Instant>,
    backoff: Duration,
    attempts: u32,
    resubscribe_at: Option<Instant>,
    backfill: Option<(Instant, u32, i64)>,
    failed: bool,
}

impl Session {
    fn new(
        lib: ProfitLibrary,
        config: DllConfig,
        status: StatusCell,
        shared: Arc<Shared>,
        notices: rtrb::Producer<Notice>,
        orders: rtrb::Consumer<OrderRequest>,
    ) -> Self {
        let c = &config.credentials;
        let backfill_from_ms = config.backfill_from_ms;
        Self {
            key: to_wide(&c.key),
            user: to_wide(&c.user),
            password: to_wide(&c.password),
            exchange: to_wide(&config.exchange),
            tickers: config.tickers.iter().map(|t| (to_wide(t), false)).collect(),
            backoff: config.reconnect.initial_backoff,
            lib,
            config,
            status,
            shared,
            notices,
            orders,
            connected: false,
            // A restart's gap is filled at the first connection, like a reconnection's.
            had_gap: backfill_from_ms.is_some(),
            gap_from_ms: backfill_from_ms,
            down_since: None,
            next_attempt: None,
            attempts: 0,
            resubscribe_at: None,
            backfill: None,
            failed: false,
        }
    }

    fn check(call: &'static str, code: i32) -> Result<(), DllError> {
        if code == NL_OK {
            Ok(())
        } else {
            Err(DllError::Call { call, code: i64::from(code), name: abi::nl_name(i64::from(code)) })
        }
    }

    fn initialize(&mut self) -> Result<(), DllError> {
        update(&self.status, |s| s.initializations += 1);
        let code = match self.config.login {
            // SAFETY: the strings are NUL-terminated UTF-16 owned by `self`
            // and outlive the call; the callbacks are `fn` items with the
            // ABI's signatures, alive for the whole program.
            LoginMode::Full => unsafe {
                (self.lib.initialize_login)(
                    self.key.as_ptr(),
                    self.user.as_ptr(),
                    self.password.as_ptr(),
                    callbacks::on_state,
                    callbacks::on_order_history,
                    callbacks::on_order_change,
                    callbacks::on_account,
                    callbacks::on_new_trade,
                    callbacks::on_daily,
                    callbacks::on_price_book,
                    callbacks::on_offer_book,
                    callbacks::on_history_trade,
                    callbacks::on_progress,
                    callbacks::on_tiny_book,
                )
            },
            // SAFETY: as above.
            LoginMode::Market => unsafe {
                (self.lib.initialize_market_login)(
                    self.key.as_ptr(),
                    self.user.as_ptr(),
                    self.password.as_ptr(),
                    callbacks::on_state,
                    callbacks::on_new_trade,
                    callbacks::on_daily,
                    callbacks::on_price_book,
                    callbacks::on_offer_book,
                    callbacks::on_history_trade,
                    callbacks::on_progress,
                    callbacks::on_tiny_book,
                )
            },
        };
        let call = match self.config.login {
            LoginMode::Full => "DLLInitializeLogin",
            LoginMode::Market => "DLLInitializeMarketLogin",
        };
        Self::check(call, code)?;
        if self.config.trade_callback == TradeCallbackStyle::V2 {
            callbacks::set_translate(self.lib.translate_trade);
            // SAFETY: the callbacks are `fn` items with the V2 signature, alive for the program.
            Self::check("SetTradeCallbackV2", unsafe { (self.lib.set_trade_callback_v2)(callbacks::on_trade_v2) })?;
            // SAFETY: as above.
            Self::check("SetHistoryTradeCallbackV2", unsafe {
                (self.lib.set_history_trade_callback_v2)(callbacks::on_history_trade_v2)
            })?;
        }
        Ok(())
    }

    fn finalize(&mut self) {
        // SAFETY: no arguments; the DLL stops its thread and its callbacks.
        let code = unsafe { (self.lib.finalize)() };
        if code != NL_OK {
            let e = Self::check("DLLFinalize", code).err().map(|e| e.to_string());
            update(&self.status, |s| s.last_error = e);
        }
    }

    fn run(mut self, control: &Receiver<DllEvent>, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            match control.recv_timeout(Duration::from_millis(2)) {
                Ok(event) => self.on_event(event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(event) = control.try_recv() {
                self.on_event(event);
            }
            self.send_orders();
            self.on_timers(Instant::now());
        }
        self.finalize();
        // Dropping the callbacks' context drops the ring's producer: the stream finishes.
        callbacks::uninstall();
        update(&self.status, |s| {
            if s.phase != Phase::Failed {
                s.phase = Phase::Stopped;
            }
        });
    }

    fn fail(&mut self, failure: Option<LoginFailure>, why: String) {
        self.failed = true;
        update(&self.status, |s| {
            s.phase = Phase::Failed;
            s.failure = failure;
            s.last_error = Some(why);
        });
    }

    fn schedule_attempt(&mut self, now: Instant) {
        self.next_attempt = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.reconnect.max_backoff);
    }

    fn on_event(&mut self, event: DllEvent) {
        if self.failed {
            return;
        }
        let now = Instant::now();
        match event {
            DllEvent::State { kind: abi::CONN_LOGIN, result } => match LoginFailure::from_login_result(result) {
                None => update(&self.status, |s| s.logged_in = true),
                Some(f) if !f.is_transient() => self.fail(Some(f), f.to_string()),
                Some(f) => {
                    update(&self.status, |s| s.last_error = Some(f.to_string()));
                    self.down_since.get_or_insert(now);
                    self.schedule_attempt(now);
                }
            },
            DllEvent::State { kind: abi::CONN_ACTIVATION, result: abi::ACTIVATION_INVALID } => {
                let f = LoginFailure::InvalidActivationKey;
                self.fail(Some(f), f.to_string());
            }
            DllEvent::State { kind: abi::CONN_ROUTING, result } => update(&self.status, |s| s.routing = Some(result)),
            DllEvent::State { kind: abi::CONN_MARKET_DATA, result: abi::MARKET_CONNECTED } => self.on_connected(now),
            DllEvent::State { kind: abi::CONN_MARKET_DATA, .. } => self.on_disconnected(now),
            DllEvent::Progress { progress: abi::PROGRESS_DONE, .. } => {
                if let Some((deadline, left, from)) = self.backfill {
                    self.backfill = (left > 1).then_some((deadline, left - 1, from));
                    update(&self.status, |s| s.backfills_completed += 1);
                }
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, now: Instant) {
        self.connected = true;
        self.down_since = None;
        self.next_attempt = None;
        self.backoff = self.config.reconnect.initial_backoff;
        self.attempts = 0;
        self.subscribe_missing(now);
        if std::mem::take(&mut self.had_gap) {
            self.start_backfill(now);
        }
        update(&self.status, |s| s.phase = Phase::Connected);
    }

    fn on_disconnected(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        self.connected = false;
        self.had_gap = true;
        self.down_since = Some(now);
        // The DLL forgets subscriptions with the connection.
        for t in &mut self.tickers {
            t.1 = false;
        }
        let last = self.shared.last_live_trade_ms.load(Ordering::Relaxed);
        if let Some((_, _, from)) = self.backfill.take() {
            // Down again before the backfill finished: the next one starts where this one did.
            self.gap_from_ms = Some(from);
        } else if self.gap_from_ms.is_none() && last != i64::MIN {
            self.gap_from_ms = Some(last);
        }
        update(&self.status, |s| {
            s.phase = Phase::Disconnected;
            s.disconnects += 1;
        });
    }

    fn subscribe_missing(&mut self, now: Instant) {
        let mut failed = None;
        for (ticker, subscribed) in &mut self.tickers {
            if *subscribed {
                continue;
            }
            let calls: [(&'static str, abi::TickerFn, bool); 3] = [
                ("SubscribeTicker", self.lib.subscribe_ticker, true),
                ("SubscribePriceBook", self.lib.subscribe_price_book, self.config.price_book),
                ("SubscribeOfferBook", self.lib.subscribe_offer_book, self.config.offer_book),
            ];
            let mut ok = true;
            for (name, f, wanted) in calls {
                if !wanted {
                    continue;
                }
                // SAFETY: NUL-terminated UTF-16 owned by `self`, valid for the call.
                let code = unsafe { f(ticker.as_ptr(), self.exchange.as_ptr()) };
                if let Err(e) = Self::check(name, code) {
                    ok = false;
                    failed = Some(e.to_string());
                    break;
                }
            }
            *subscribed = ok;
        }
        let all = self.tickers.iter().all(|t| t.1);
        update(&self.status, |s| {
            s.subscribes += 1;
            if let Some(e) = &failed {
                s.subscribe_errors += 1;
                s.last_error = Some(e.clone());
            }
        });
        self.resubscribe_at = if all { None } else { Some(now + self.backoff) };
    }

    fn start_backfill(&mut self, now: Instant) {
        let Some(from_ms) = self.gap_from_ms.take() else {
            // Nothing was received before the gap: nothing to fill.
            self.abandon_backfill();
            return;
        };
        let offset = self.config.utc_offset_minutes;
        // From the second of the last trade seen (duplicates are dropped by
        // trade number) to the end of that trading day.
        let start = to_wide(&format_dll_date(from_ms - from_ms.rem_euclid(MS_PER_SECOND), offset, false));
        let day = LocalTime::from_epoch_ms(from_ms, offset);
        let end_ms = LocalTime { hour: 23, minute: 59, second: 59, millisecond: 0, ..day }
            .to_epoch_ms(offset)
            .unwrap_or(from_ms);
        let end = to_wide(&format_dll_date(end_ms, offset, false));
        let mut requested = 0u32;
        let mut error = None;
        for (ticker, _) in &self.tickers {
            // SAFETY: NUL-terminated UTF-16 owned by this frame or `self`, valid for the call.
            let code = unsafe {
                (self.lib.get_history_trades)(ticker.as_ptr(), self.exchange.as_ptr(), start.as_ptr(), end.as_ptr())
            };
            match Self::check("GetHistoryTrades", code) {
                Ok(()) => requested += 1,
                Err(e) => error = Some(e.to_string()),
            }
        }
        update(&self.status, |s| {
            s.backfills_requested += requested;
            if error.is_some() {
                s.last_error = error;
            }
        });
        if requested == 0 {
            self.abandon_backfill();
        } else {
            self.backfill = Some((now + self.config.reconnect.backfill_timeout, requested, from_ms));
            let _ = self.notices.push(Notice::BackfillStarted { requests: requested });
        }
    }

    fn abandon_backfill(&mut self) {
        self.backfill = None;
        update(&self.status, |s| s.backfills_abandoned += 1);
        // The notice ring holds 1024 and notices are rare; a full ring means
        // the consumer is gone, and then nobody waits for this one.
        let _ = self.notices.push(Notice::BackfillAbandoned);
    }

    fn on_timers(&mut self, now: Instant) {
        if self.failed {
            return;
        }
        if let Some((deadline, _, _)) = self.backfill
            && now >= deadline
        {
            self.backfill = None;
            update(&self.status, |s| s.backfills_abandoned += 1);
            let _ = self.notices.push(Notice::BackfillTimedOut);
        }
        if self.connected
            && let Some(at) = self.resubscribe_at
            && now >= at
        {
            self.subscribe_missing(now);
        }
        let Some(down) = self.down_since else { return };
        let due = match self.next_attempt {
            Some(at) => now >= at,
            None => now.duration_since(down) >= self.config.reconnect.reinit_after,
        };
        if !due {
            return;
        }
        let max = self.config.reconnect.max_attempts;
        if max > 0 && self.attempts >= max {
            let last = self.status.0.lock().map(|s| s.last_error.clone()).ok().flatten().unwrap_or_default();
            self.fail(None, format!("gave up reconnecting after {max} attempts; last error: {last}"));
            return;
        }
        self.attempts += 1;
        self.schedule_attempt(now);
        self.finalize();
        if let Err(e) = self.initialize() {
            update(&self.status, |s| s.last_error = Some(e.to_string()));
        }
    }

    fn send_orders(&mut self) {
        while let Ok(order) = self.orders.pop() {
            let result = self.send_order(&order);
            let notice = match result {
                Ok(profit_id) => {
                    update(&self.status, |s| s.orders_sent += 1);
                    Notice::OrderAccepted { order_id: order.order_id, profit_id }
                }
                Err(e) => {
                    update(&self.status, |s| {
                        s.orders_refused += 1;
                        s.last_error = Some(e.to_string());
                    });
                    Notice::OrderRefused { order_id: order.order_id, code: e.code() }
                }
            };
            let _ = self.notices.push(notice);
        }
    }

    fn send_order(&mut self, order: &OrderRequest) -> Result<i64, DllError> {
        if self.config.login == LoginMode::Market {
            return Err(DllError::Call {
                call: "SendOrder",
                code: i64::from(abi::NL_MARKET_ONLY),
                name: "NL_MARKET_ONLY (market-data login: use dll.login = \"full\" to route orders)",
            });
        }
        let ticker = to_wide(order.symbol.as_str());
        let account = to_wide(&self.config.account.account_id);
        let sub_account = to_wide(&self.config.account.sub_account_id);
        let request = TConnectorSendOrder {
            version: 0,
            account: TConnectorAccountIdentifier {
                version: 0,
                broker_id: self.config.account.broker_id,
                account_id: account.as_ptr(),
                sub_account_id: sub_account.as_ptr(),
                reserved: 0,
            },
            asset: TConnectorAssetIdentifier {
                version: 0,
                ticker: ticker.as_ptr(),
                exchange: self.exchange.as_ptr(),
                feed_type: 0,
            },
            password: self.password.as_ptr(),
            order_type: if order.limit_price.is_some() { abi::ORDER_TYPE_LIMIT } else { abi::ORDER_TYPE_MARKET },
            side: match order.side {
                Side::Buy => abi::ORDER_SIDE_BUY,
                Side::Sell => abi::ORDER_SIDE_SELL,
            },
            price: order.limit_price.unwrap_or(-1.0),
            stop_price: -1.0,
            quantity: order.quantity,
        };
        // SAFETY: `request` and the strings it points to live on this frame for the call.
        let id = unsafe { (self.lib.send_order)(&request) };
        if id <= 0 {
            return Err(DllError::Call { call: "SendOrder", code: id, name: abi::nl_name(id) });
        }
        Ok(id)
    }
}

impl DllError {
    fn code(&self) -> i64 {
        match self {
            DllError::Call { code, .. } => *code,
            _ => i64::from(abi::NL_INTERNAL_ERROR),
        }
    }
}
