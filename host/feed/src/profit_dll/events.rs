//! What the callbacks copy out of the DLL: small `Copy` values, so moving one
//! through the ring never allocates.

use tickhost_core::{BookSide, BookUpdate, Price, Side, Symbol, Trade};

/// Where a trade came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradeOrigin {
    /// The live trade callback (V1 or V2).
    Live,
    /// A `GetHistoryTrades` answer (backfill).
    History,
}

/// One order-book entry of the offer book (one resting order).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfferUpdate {
    pub symbol: Symbol,
    pub action: tickhost_core::market::BookAction,
    pub side: BookSide,
    pub position: u32,
    pub price: Option<Price>,
    pub quantity: Option<i64>,
    pub agent: Option<i32>,
    pub offer_id: Option<i64>,
}

/// The daily bar of the new-daily callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DailyBar {
    pub symbol: Symbol,
    pub ts_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub adjust: f64,
    pub max_limit: f64,
    pub min_limit: f64,
    pub vol_buyer: f64,
    pub vol_seller: f64,
    pub quantity: i32,
    pub trades: i32,
    pub open_contracts: i32,
    pub qty_buyer: i32,
    pub qty_seller: i32,
    pub trades_buyer: i32,
    pub trades_seller: i32,
}

/// An order's state as the broker reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Other,
}

impl OrderStatus {
    /// From the status text of the order callback (case-insensitive; Profit
    /// writes English FIX names).
    pub fn from_text(text: &[u16]) -> Self {
        let mut buf = [0u8; 24];
        let n = text.len().min(buf.len());
        for (b, &u) in buf.iter_mut().zip(&text[..n]) {
            *b = u8::try_from(u).unwrap_or(b'?').to_ascii_lowercase();
        }
        match &buf[..n] {
            b"new" => Self::New,
            b"partiallyfilled" | b"partially filled" => Self::PartiallyFilled,
            b"filled" => Self::Filled,
            b"canceled" | b"cancelled" => Self::Canceled,
            b"rejected" => Self::Rejected,
            _ => Self::Other,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::New => "New",
            Self::PartiallyFilled => "PartiallyFilled",
            Self::Filled => "Filled",
            Self::Canceled => "Canceled",
            Self::Rejected => "Rejected",
            Self::Other => "Other",
        }
    }
}

/// One order-change callback.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrderUpdate {
    pub symbol: Symbol,
    /// The id `SendOrder` returned.
    pub profit_id: i64,
    pub side: Option<Side>,
    pub quantity: i64,
    pub traded_quantity: i64,
    pub leaves_quantity: i64,
    pub price: f64,
    pub avg_price: f64,
    pub status: OrderStatus,
    pub ts_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DllEvent {
    Trade(Trade, TradeOrigin),
    PriceBook(BookUpdate),
    OfferBook(OfferUpdate),
    TinyBook {
        symbol: Symbol,
        side: BookSide,
        price: Price,
        quantity: i64,
    },
    Daily(DailyBar),
    /// The state callback, raw: `kind` is `CONN_*`, `result` its code.
    State {
        kind: i32,
        result: i32,
    },
    Progress {
        symbol: Symbol,
        progress: i32,
    },
    Order(OrderUpdate),
}
