//! Market data: symbols, prices, trades, book updates and candles.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A price as a fixed-point number with four decimal places.
///
/// Why fixed-point: B3 prices sit on a tick grid (WDO 0.5, WIN 5, stocks
/// 0.01), and the engine compares prices for equality (edits, duplicate
/// detection, stop and target hits) and sums PnL over thousands of trades.
/// Integers make those exact and deterministic across platforms. Features
/// are statistics, not prices, so they convert to `f64` once, at the candle.
/// Four decimals covers every B3 instrument, including option premiums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Price(i64);

impl Price {
    /// Units per point.
    pub const SCALE: i64 = 10_000;

    pub const fn from_raw(raw: i64) -> Self {
        Self(raw)
    }

    pub const fn raw(self) -> i64 {
        self.0
    }

    /// Rounds to the nearest representable price; `None` for NaN, infinities
    /// and values outside the representable range.
    pub fn from_f64(points: f64) -> Option<Self> {
        let scaled = (points * Self::SCALE as f64).round();
        if scaled.is_finite() && scaled.abs() < i64::MAX as f64 { Some(Self(scaled as i64)) } else { None }
    }

    pub fn as_f64(self) -> f64 {
        self.0 as f64 / Self::SCALE as f64
    }

    /// Rounds to the nearest multiple of `tick` (ties away from zero).
    pub fn round_to_tick(self, tick: Price) -> Self {
        if tick.0 <= 0 {
            return self;
        }
        let half = tick.0 / 2;
        let q = if self.0 >= 0 { (self.0 + half) / tick.0 } else { (self.0 - half) / tick.0 };
        Self(q * tick.0)
    }
}

impl std::ops::Add for Price {
    type Output = Price;
    fn add(self, rhs: Price) -> Price {
        Price(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Price {
    type Output = Price;
    fn sub(self, rhs: Price) -> Price {
        Price(self.0 - rhs.0)
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// A ticker such as `WDOFUT` or `WDOH25`, stored inline so a [`Trade`] is
/// `Copy` and moving one through a ring never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol {
    len: u8,
    bytes: [u8; Symbol::CAPACITY],
}

impl Symbol {
    pub const CAPACITY: usize = 23;

    /// `None` when the ticker is empty, longer than [`Symbol::CAPACITY`]
    /// bytes or not printable ASCII.
    pub fn new(ticker: &str) -> Option<Self> {
        Self::from_bytes(ticker.as_bytes())
    }

    pub fn from_bytes(ticker: &[u8]) -> Option<Self> {
        if ticker.is_empty() || ticker.len() > Self::CAPACITY || !ticker.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let mut bytes = [0u8; Self::CAPACITY];
        bytes[..ticker.len()].copy_from_slice(ticker);
        Some(Self { len: ticker.len() as u8, bytes })
    }

    pub fn as_str(&self) -> &str {
        // Only printable ASCII is ever stored, so this cannot fail.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Symbol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Symbol::new(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid symbol {s:?}")))
    }
}

/// Side of an order, a position or an aggressor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// ProfitDLL's trade types, with its numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum TradeType {
    Cross = 1,
    AggressorBuy = 2,
    AggressorSell = 3,
    Auction = 4,
    Surveillance = 5,
    Expit = 6,
    OptionsExercise = 7,
    OverTheCounter = 8,
    DerivativeTerm = 9,
    Index = 10,
    Btc = 11,
    OnBehalf = 12,
    Rlp = 13,
    Unknown = 32,
}

impl TradeType {
    pub const ALL: [TradeType; 14] = [
        TradeType::Cross,
        TradeType::AggressorBuy,
        TradeType::AggressorSell,
        TradeType::Auction,
        TradeType::Surveillance,
        TradeType::Expit,
        TradeType::OptionsExercise,
        TradeType::OverTheCounter,
        TradeType::DerivativeTerm,
        TradeType::Index,
        TradeType::Btc,
        TradeType::OnBehalf,
        TradeType::Rlp,
        TradeType::Unknown,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type for a ProfitDLL code; `None` for a code the DLL does not define.
    pub fn from_code(code: i32) -> Option<TradeType> {
        Self::ALL.iter().copied().find(|t| i32::from(t.code()) == code)
    }

    /// The name Profit writes in its CSV export.
    pub fn profit_name(self) -> &'static str {
        match self {
            TradeType::Cross => "Cross",
            TradeType::AggressorBuy => "AggressorBuyer",
            TradeType::AggressorSell => "AggressorSeller",
            TradeType::Auction => "Auction",
            TradeType::Surveillance => "Surveillance",
            TradeType::Expit => "Expit",
            TradeType::OptionsExercise => "OptionsExercise",
            TradeType::OverTheCounter => "OverTheCounter",
            TradeType::DerivativeTerm => "DerivativeTerm",
            TradeType::Index => "Index",
            TradeType::Btc => "BTC",
            TradeType::OnBehalf => "OnBehalf",
            TradeType::Rlp => "RLP",
            TradeType::Unknown => "Unknown",
        }
    }

    /// Parses a CSV export name (case-insensitive); `None` for names Profit
    /// does not define, which callers count and map to [`TradeType::Unknown`].
    pub fn from_profit_name(name: &[u8]) -> Option<TradeType> {
        Self::ALL.iter().copied().find(|t| t.profit_name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The aggressor side. Only types 2 and 3 have one: auctions, crosses and
    /// the rest are neither buys nor sells (the Python system labelled every
    /// non-buy a sell, which skewed its order-flow features).
    pub fn aggressor(self) -> Option<Side> {
        match self {
            TradeType::AggressorBuy => Some(Side::Buy),
            TradeType::AggressorSell => Some(Side::Sell),
            _ => None,
        }
    }
}

/// A broker (agent) code. ProfitDLL reports numeric codes; CSV exports carry
/// names, which an [`AgentDirectory`] maps to codes once per distinct name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AgentId(pub u32);

/// Interns agent names. Allocates only the first time a name is seen, so a
/// stream of trades between the same few hundred brokers does not allocate.
#[derive(Debug, Default, Clone)]
pub struct AgentDirectory {
    ids: HashMap<Box<[u8]>, AgentId>,
    names: Vec<String>,
}

impl AgentDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id for `raw` (bytes as found in the source, in any encoding).
    /// Non-UTF-8 names (Latin-1 exports exist) are decoded as Latin-1.
    pub fn intern(&mut self, raw: &[u8]) -> AgentId {
        if let Some(&id) = self.ids.get(raw) {
            return id;
        }
        let id = AgentId(self.names.len() as u32);
        let name = match std::str::from_utf8(raw) {
            Ok(s) => s.to_owned(),
            Err(_) => raw.iter().map(|&b| char::from(b)).collect(),
        };
        self.names.push(name);
        self.ids.insert(raw.into(), id);
        id
    }

    pub fn name(&self, id: AgentId) -> Option<&str> {
        self.names.get(id.0 as usize).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One trade (negócio) as the exchange reports it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub symbol: Symbol,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Unique per trading session per asset.
    pub trade_number: u64,
    pub price: Price,
    /// Contracts.
    pub quantity: i64,
    /// Financial volume in BRL.
    pub volume: f64,
    pub buy_agent: AgentId,
    pub sell_agent: AgentId,
    pub trade_type: TradeType,
    /// An exchange correction of an earlier trade with the same number.
    pub is_edit: bool,
}

impl Trade {
    pub fn aggressor(&self) -> Option<Side> {
        self.trade_type.aggressor()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BookSide {
    Bid,
    Ask,
}

/// ProfitDLL book actions (Add=0, Edit=1, Delete=2, DeleteFrom=3, FullBook=4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BookAction {
    Add,
    Edit,
    Delete,
    DeleteFrom,
    FullBook,
}

/// One price-book change. `position` counts from the END of the side's list,
/// as ProfitDLL does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookUpdate {
    pub symbol: Symbol,
    pub ts_ms: i64,
    pub action: BookAction,
    pub side: BookSide,
    pub position: u32,
    pub price: Price,
    pub quantity: i64,
    pub orders: u32,
}

/// A time bar built from trades, with the order flow of its trades.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candle {
    pub symbol: Symbol,
    /// Start of the bar (inclusive), ms since the epoch.
    pub open_ms: i64,
    /// Time of the last trade in the bar.
    pub close_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// Contracts traded.
    pub volume: f64,
    /// BRL traded.
    pub financial_volume: f64,
    pub trades: u32,
    /// Contracts traded by aggressive buyers (type 2) and sellers (type 3).
    pub buy_volume: f64,
    pub sell_volume: f64,
    pub buy_trades: u32,
    pub sell_trades: u32,
    /// Longest run of consecutive aggressor buys / sells inside the bar.
    /// Trades without an aggressor neither extend nor break a run.
    pub max_buy_run: u32,
    pub max_sell_run: u32,
}

impl Candle {
    /// A bar with no trades yet, every price at `price`.
    pub fn flat(symbol: Symbol, open_ms: i64, close_ms: i64, price: f64) -> Self {
        Self {
            symbol,
            open_ms,
            close_ms,
            open: price,
            high: price,
            low: price,
            close: price,
            volume: 0.0,
            financial_volume: 0.0,
            trades: 0,
            buy_volume: 0.0,
            sell_volume: 0.0,
            buy_trades: 0,
            sell_trades: 0,
            max_buy_run: 0,
            max_sell_run: 0,
        }
    }
}
