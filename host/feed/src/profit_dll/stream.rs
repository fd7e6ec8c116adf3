//! The consumer side of the feed, run on the engine thread: pops events in
//! callback order, keeps the books, and turns the rest into [`StreamItem`]s.
//!
//! After a reconnection the DLL sends live trades at once while the gap's
//! history is still on its way. The stream holds those live trades back
//! (in a preallocated buffer) until the backfill is done (progress 1000 for
//! every request) or abandoned, then releases them: the engine sees the gap's
//! trades first and every trade in exchange order. Duplicates (history that
//! overlaps what was already seen) keep their trade numbers, and the engine's
//! `Sequencer` drops them by number; a history trade whose content differs
//! from the one seen is applied as an exchange correction.

use std::sync::Arc;

use tickhost_core::book::{BookBoard, TopOfBook};
use tickhost_core::{Symbol, Trade};

use super::DllConfig;
use super::abi::{CONN_MARKET_DATA, MARKET_CONNECTED, PROGRESS_DONE};
use super::book::{OfferBook, PriceBook};
use super::events::{DailyBar, DllEvent, OrderUpdate, TradeOrigin};
use super::sink::EventReceiver;

/// From the session thread to the stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Notice {
    /// The answer to one reconnection: `requests` history requests went out.
    BackfillStarted {
        requests: u32,
    },
    /// The answer to one reconnection: nothing to request.
    BackfillAbandoned,
    /// The running backfill did not finish in time.
    BackfillTimedOut,
    OrderAccepted {
        order_id: u64,
        profit_id: i64,
    },
    OrderRefused {
        order_id: u64,
        code: i64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StreamItem {
    Trade(Trade),
    /// An order-change callback; `order_id` is the engine's id once `SendOrder` returned.
    Order {
        order_id: Option<u64>,
        update: OrderUpdate,
    },
    /// `SendOrder` refused the order (`code` is its NL_* result).
    OrderRefused {
        order_id: u64,
        code: i64,
    },
    /// A price-book change: the book's new top, for publishing.
    Book {
        symbol: Symbol,
        top: TopOfBook,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCounters {
    pub live_trades: u64,
    pub history_trades: u64,
    /// Live trades held back during backfills.
    pub held_trades: u64,
    pub held_high_water: usize,
    pub backfills_completed: u64,
    pub backfills_abandoned: u64,
    pub book_updates: u64,
    pub book_errors: u64,
    pub daily_bars: u64,
    pub tiny_books: u64,
    pub state_changes: u64,
    pub order_updates: u64,
    /// Order updates for an id `SendOrder` never returned to us (orders
    /// placed elsewhere on the account).
    pub foreign_order_updates: u64,
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    requests: Option<u32>,
    done: u32,
}

#[derive(Debug)]
pub struct DllStream {
    rx: EventReceiver,
    notices: rtrb::Consumer<Notice>,
    price_books: Vec<(Symbol, PriceBook)>,
    offer_books: Vec<(Symbol, OfferBook)>,
    /// Where each price-book change publishes the book's top, for book features.
    book_board: Option<Arc<BookBoard>>,
    last_daily: Option<DailyBar>,
    connected: bool,
    gap: bool,
    hold: Option<Hold>,
    /// Answers of the session to reconnections not yet matched with the
    /// reconnection in the data (the notice ring runs ahead of or behind the
    /// event ring): `Some(requests)` or `None` (nothing requested).
    answers: std::collections::VecDeque<Option<u32>>,
    held: Vec<Trade>,
    releasing: usize,
    /// profit id -> engine order id; few live orders at once, so a list.
    orders: Vec<(i64, u64)>,
    waiting_updates: Vec<OrderUpdate>,
    /// Items ready before the event that produced them was polled (parked order updates).
    ready: std::collections::VecDeque<StreamItem>,
    counters: StreamCounters,
}

impl DllStream {
    pub(crate) fn new(rx: EventReceiver, notices: rtrb::Consumer<Notice>, config: &DllConfig) -> Self {
        let symbols = config.tickers.iter().filter_map(|t| Symbol::new(t));
        Self {
            rx,
            notices,
            price_books: symbols.clone().map(|s| (s, PriceBook::default())).collect(),
            offer_books: symbols.map(|s| (s, OfferBook::default())).collect(),
            book_board: None,
            last_daily: None,
            connected: false,
            // A restarted ingest backfills at its first connection: hold for it.
            gap: config.backfill_from_ms.is_some(),
            hold: None,
            answers: std::collections::VecDeque::with_capacity(16),
            held: Vec::with_capacity(config.hold_capacity),
            releasing: usize::MAX,
            orders: Vec::with_capacity(64),
            waiting_updates: Vec::with_capacity(16),
            ready: std::collections::VecDeque::with_capacity(16),
            counters: StreamCounters::default(),
        }
    }

    pub fn counters(&self) -> StreamCounters {
        self.counters
    }

    /// From now on every price-book change publishes the book's top to `board`.
    pub fn publish_books_to(&mut self, board: Arc<BookBoard>) {
        self.book_board = Some(board);
    }

    pub fn price_book(&self, symbol: Symbol) -> Option<&PriceBook> {
        self.price_books.iter().find(|(s, _)| *s == symbol).map(|(_, b)| b)
    }

    pub fn offer_book(&self, symbol: Symbol) -> Option<&OfferBook> {
        self.offer_books.iter().find(|(s, _)| *s == symbol).map(|(_, b)| b)
    }

    pub fn last_daily(&self) -> Option<DailyBar> {
        self.last_daily
    }

    /// Backlog between the callbacks and this stream (ring + spill).
    pub fn backlog(&self) -> usize {
        self.rx.backlog()
    }

    pub fn feed_counters(&self) -> &super::FeedCounters {
        &self.rx.shared().counters
    }

    /// The feed was stopped and everything it delivered has been polled.
    pub fn is_finished(&self) -> bool {
        self.rx.is_finished() && self.releasing == usize::MAX && self.ready.is_empty()
    }

    /// The next item, if one is ready; never waits.
    pub fn poll(&mut self) -> Option<StreamItem> {
        if let Some(item) = self.ready.pop_front() {
            return Some(item);
        }
        if self.releasing != usize::MAX {
            if let Some(&t) = self.held.get(self.releasing) {
                self.releasing += 1;
                return Some(StreamItem::Trade(t));
            }
            self.held.clear();
            self.releasing = usize::MAX;
        }
        while let Ok(notice) = self.notices.pop() {
            if let Some(item) = self.on_notice(notice) {
                return Some(item);
            }
            if self.releasing != usize::MAX {
                return self.poll();
            }
        }
        while let Some(event) = self.rx.pop() {
            if let Some(item) = self.on_event(event) {
                return Some(item);
            }
            if self.releasing != usize::MAX {
                return self.poll();
            }
        }
        None
    }

    fn release(&mut self, completed: bool) {
        self.hold = None;
        if completed {
            self.counters.backfills_completed += 1;
        } else {
            self.counters.backfills_abandoned += 1;
        }
        self.releasing = 0;
    }

    fn on_notice(&mut self, notice: Notice) -> Option<StreamItem> {
        match notice {
            Notice::BackfillStarted { requests } => {
                self.on_answer(Some(requests));
                None
            }
            Notice::BackfillAbandoned => {
                self.on_answer(None);
                None
            }
            Notice::BackfillTimedOut => {
                if self.hold.is_some_and(|h| h.requests.is_some()) {
                    self.release(false);
                }
                None
            }
            Notice::OrderAccepted { order_id, profit_id } => {
                self.orders.push((profit_id, order_id));
                // Updates that raced ahead of SendOrder's return, in their order.
                let mut i = 0;
                while i < self.waiting_updates.len() {
                    if self.waiting_updates[i].profit_id == profit_id {
                        let update = self.waiting_updates.remove(i);
                        self.ready.push_back(StreamItem::Order { order_id: Some(order_id), update });
                    } else {
                        i += 1;
                    }
                }
                self.ready.pop_front()
            }
            Notice::OrderRefused { order_id, code } => Some(StreamItem::OrderRefused { order_id, code }),
        }
    }

    fn on_answer(&mut self, answer: Option<u32>) {
        match self.hold {
            Some(Hold { requests: None, .. }) => self.apply_answer(answer),
            _ => self.answers.push_back(answer),
        }
    }

    /// Gives the running hold the session's answer to its reconnection.
    fn apply_answer(&mut self, answer: Option<u32>) {
        let Some(hold) = self.hold.as_mut() else { return };
        match answer {
            None => self.release(false),
            Some(requests) => {
                hold.requests = Some(requests);
                if hold.done >= requests {
                    self.release(true);
                }
            }
        }
    }

    fn order_item(&mut self, update: OrderUpdate) -> StreamItem {
        let order_id = self.orders.iter().find(|(p, _)| *p == update.profit_id).map(|(_, o)| *o);
        StreamItem::Order { order_id, update }
    }

    fn on_event(&mut self, event: DllEvent) -> Option<StreamItem> {
        match event {
            DllEvent::Trade(trade, TradeOrigin::Live) => {
                self.counters.live_trades += 1;
                if self.hold.is_some() {
                    self.held.push(trade);
                    self.counters.held_trades += 1;
                    self.counters.held_high_water = self.counters.held_high_water.max(self.held.len());
                    return None;
                }
                Some(StreamItem::Trade(trade))
            }
            DllEvent::Trade(trade, TradeOrigin::History) => {
                self.counters.history_trades += 1;
                Some(StreamItem::Trade(trade))
            }
            DllEvent::PriceBook(update) => {
                self.counters.book_updates += 1;
                let book = self.price_books.iter_mut().find(|(s, _)| *s == update.symbol)?;
                if book.1.apply(&update).is_err() {
                    self.counters.book_errors += 1;
                    return None;
                }
                let top = book.1.top();
                if let Some(board) = &self.book_board {
                    board.publish(update.symbol, &top);
                }
                Some(StreamItem::Book { symbol: update.symbol, top })
            }
            DllEvent::OfferBook(update) => {
                self.counters.book_updates += 1;
                if let Some((_, book)) = self.offer_books.iter_mut().find(|(s, _)| *s == update.symbol)
                    && book.apply(&update).is_err()
                {
                    self.counters.book_errors += 1;
                }
                None
            }
            DllEvent::TinyBook { .. } => {
                self.counters.tiny_books += 1;
                None
            }
            DllEvent::Daily(bar) => {
                self.counters.daily_bars += 1;
                self.last_daily = Some(bar);
                None
            }
            DllEvent::State { kind: CONN_MARKET_DATA, result } => {
                self.counters.state_changes += 1;
                if result == MARKET_CONNECTED {
                    if self.gap {
                        self.gap = false;
                        // A new reconnection: a new answer is due (a backfill
                        // still running is superseded by the new request, which
                        // starts from the same gap).
                        self.hold = Some(Hold { requests: None, done: 0 });
                        if let Some(answer) = self.answers.pop_front() {
                            self.apply_answer(answer);
                        }
                    }
                    self.connected = true;
                } else if self.connected {
                    self.connected = false;
                    self.gap = true;
                }
                None
            }
            DllEvent::State { .. } => {
                self.counters.state_changes += 1;
                None
            }
            DllEvent::Progress { progress, .. } => {
                if progress == PROGRESS_DONE
                    && let Some(hold) = self.hold.as_mut()
                {
                    hold.done += 1;
                    if hold.requests.is_some_and(|r| hold.done >= r) {
                        self.release(true);
                    }
                }
                None
            }
            DllEvent::Order(update) => {
                self.counters.order_updates += 1;
                if self.orders.iter().any(|(p, _)| *p == update.profit_id) {
                    return Some(self.order_item(update));
                }
                // SendOrder may not have returned to the session yet: wait for its id.
                if self.waiting_updates.len() < 1024 {
                    self.waiting_updates.push(update);
                } else {
                    self.counters.foreign_order_updates += 1;
                }
                None
            }
        }
    }
}
