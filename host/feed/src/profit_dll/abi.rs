//! The ProfitDLL C ABI (shared/reference/profitdll-abi.md): structs, callback
//! signatures, export signatures and codes. Shared by the host's loader and
//! by the simulator library, so both sides agree on every layout.
//!
//! Every function is `extern "system"`: stdcall on 32-bit Windows, the C ABI
//! on x86_64 Linux and Windows.

use std::ffi::c_void;

/// NUL-terminated UTF-16 (`PWideChar`).
pub type PWideChar = *const u16;

pub const NL_OK: i32 = 0;
pub const NL_INTERNAL_ERROR: i32 = 0x8000_0001_u32 as i32;
pub const NL_NOT_INITIALIZED: i32 = NL_INTERNAL_ERROR + 1;
pub const NL_INVALID_ARGS: i32 = NL_INTERNAL_ERROR + 2;
pub const NL_WAITING_SERVER: i32 = NL_INTERNAL_ERROR + 3;
pub const NL_NO_LOGIN: i32 = NL_INTERNAL_ERROR + 4;
pub const NL_NO_LICENSE: i32 = NL_INTERNAL_ERROR + 5;
pub const NL_OUT_OF_RANGE: i32 = NL_INTERNAL_ERROR + 8;
pub const NL_MARKET_ONLY: i32 = NL_INTERNAL_ERROR + 9;
pub const NL_NOT_FOUND: i32 = NL_INTERNAL_ERROR + 11;

/// Names of the NL_* codes, for error messages.
pub fn nl_name(code: i64) -> &'static str {
    const NAMES: [&str; 13] = [
        "NL_INTERNAL_ERROR",
        "NL_NOT_INITIALIZED",
        "NL_INVALID_ARGS",
        "NL_WAITING_SERVER",
        "NL_NO_LOGIN",
        "NL_NO_LICENSE",
        "NL_PASSWORD_HASH_SHA1",
        "NL_PASSWORD_HASH_MD5",
        "NL_OUT_OF_RANGE",
        "NL_MARKET_ONLY",
        "NL_NO_POSITION",
        "NL_NOT_FOUND",
        "NL_VERSION_NOT_SUPPORTED",
    ];
    if code == 0 {
        return "NL_OK";
    }
    let raw = code as i32 as u32;
    match raw.checked_sub(0x8000_0001) {
        Some(i) if (i as usize) < NAMES.len() => NAMES[i as usize],
        Some(i) if i <= 0x1f => "NL_* (a later error code)",
        _ => "an unknown code",
    }
}

/// `nConnStateType` of the state callback.
pub const CONN_LOGIN: i32 = 0;
pub const CONN_ROUTING: i32 = 1;
pub const CONN_MARKET_DATA: i32 = 2;
pub const CONN_ACTIVATION: i32 = 3;

pub const LOGIN_OK: i32 = 0;
pub const LOGIN_INVALID: i32 = 1;
pub const LOGIN_BAD_PASSWORD: i32 = 2;
pub const LOGIN_BLOCKED: i32 = 3;
pub const LOGIN_EXPIRED: i32 = 4;
pub const LOGIN_INTERNAL_ERROR: i32 = 200;

pub const MARKET_DISCONNECTED: i32 = 0;
pub const MARKET_CONNECTING: i32 = 1;
pub const MARKET_WAITING: i32 = 2;
pub const MARKET_NOT_LOGGED: i32 = 3;
pub const MARKET_CONNECTED: i32 = 4;

pub const ROUTING_CONNECTED: i32 = 2;
pub const ROUTING_BROKER_CONNECTED: i32 = 5;

pub const ACTIVATION_VALID: i32 = 0;
pub const ACTIVATION_INVALID: i32 = 1;

/// The progress value that means "every requested history trade was delivered".
pub const PROGRESS_DONE: i32 = 1000;

/// V2 trade callback flags.
pub const TC_IS_EDIT: u32 = 1;
pub const TC_LAST_PACKET: u32 = 2;

pub const BOOK_ADD: i32 = 0;
pub const BOOK_EDIT: i32 = 1;
pub const BOOK_DELETE: i32 = 2;
pub const BOOK_DELETE_FROM: i32 = 3;
pub const BOOK_FULL: i32 = 4;
pub const BOOK_SIDE_BUY: i32 = 0;
pub const BOOK_SIDE_SELL: i32 = 1;

pub const ORDER_TYPE_MARKET: u8 = 1;
pub const ORDER_TYPE_LIMIT: u8 = 2;
pub const ORDER_TYPE_STOP_LIMIT: u8 = 4;
pub const ORDER_SIDE_BUY: u8 = 1;
pub const ORDER_SIDE_SELL: u8 = 2;

/// `TAssetIDRec`: a packed record passed BY VALUE to callbacks.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub struct TAssetIDRec {
    pub ticker: PWideChar,
    pub exchange: PWideChar,
    pub feed: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TConnectorAssetIdentifier {
    pub version: u8,
    pub ticker: PWideChar,
    pub exchange: PWideChar,
    pub feed_type: u8,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TConnectorAccountIdentifier {
    pub version: u8,
    pub broker_id: i32,
    pub account_id: PWideChar,
    pub sub_account_id: PWideChar,
    pub reserved: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TConnectorSendOrder {
    pub version: u8,
    pub account: TConnectorAccountIdentifier,
    pub asset: TConnectorAssetIdentifier,
    pub password: PWideChar,
    pub order_type: u8,
    pub side: u8,
    pub price: f64,
    pub stop_price: f64,
    pub quantity: i64,
}

/// Windows `SYSTEMTIME`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemTime {
    pub year: u16,
    pub month: u16,
    pub day_of_week: u16,
    pub day: u16,
    pub hour: u16,
    pub minute: u16,
    pub second: u16,
    pub milliseconds: u16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TConnectorTrade {
    pub version: u8,
    pub trade_date: SystemTime,
    pub trade_number: u32,
    pub price: f64,
    pub quantity: i64,
    pub volume: f64,
    pub buy_agent: i32,
    pub sell_agent: i32,
    pub trade_type: u8,
}

// ---- callbacks ----
pub type TStateCallback = extern "system" fn(conn_state_type: i32, result: i32);
#[allow(clippy::too_many_arguments)]
pub type TNewTradeCallback = extern "system" fn(
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
);
pub type THistoryTradeCallback = extern "system" fn(
    asset: TAssetIDRec,
    date: PWideChar,
    trade_number: u32,
    price: f64,
    volume: f64,
    quantity: i32,
    buy_agent: i32,
    sell_agent: i32,
    trade_type: i32,
);
pub type TProgressCallback = extern "system" fn(asset: TAssetIDRec, progress: i32);
pub type TNewDailyCallback = extern "system" fn(
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
    qty: i32,
    trades: i32,
    open_contracts: i32,
    qty_buyer: i32,
    qty_seller: i32,
    trades_buyer: i32,
    trades_seller: i32,
);
pub type TPriceBookCallback = extern "system" fn(
    asset: TAssetIDRec,
    action: i32,
    position: i32,
    side: i32,
    qty: i32,
    count: i32,
    price: f64,
    p_sell: *const c_void,
    p_buy: *const c_void,
);
pub type TOfferBookCallback = extern "system" fn(
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
    has_date: u8,
    has_offer_id: u8,
    has_agent: u8,
    date: PWideChar,
    p_sell: *const c_void,
    p_buy: *const c_void,
);
pub type TTinyBookCallback = extern "system" fn(asset: TAssetIDRec, price: f64, qty: i32, side: i32);
/// The order-change callback of `DLLInitializeLogin` (old style: every field inline).
pub type TOrderChangeCallback = extern "system" fn(
    asset: TAssetIDRec,
    broker: i32,
    qty: i32,
    traded_qty: i32,
    leaves_qty: i32,
    side: i32,
    price: f64,
    stop_price: f64,
    avg_price: f64,
    profit_id: i64,
    order_type: PWideChar,
    account: PWideChar,
    holder: PWideChar,
    cl_ord_id: PWideChar,
    status: PWideChar,
    date: PWideChar,
    text_message: PWideChar,
);
/// Order history of the account (same fields, no message).
pub type THistoryCallback = extern "system" fn(
    asset: TAssetIDRec,
    broker: i32,
    qty: i32,
    traded_qty: i32,
    leaves_qty: i32,
    side: i32,
    price: f64,
    stop_price: f64,
    avg_price: f64,
    profit_id: i64,
    order_type: PWideChar,
    account: PWideChar,
    holder: PWideChar,
    cl_ord_id: PWideChar,
    status: PWideChar,
    date: PWideChar,
);
pub type TAccountCallback =
    extern "system" fn(broker: i32, broker_name: PWideChar, account_id: PWideChar, holder: PWideChar);
pub type TConnectorTradeCallback =
    extern "system" fn(asset: *const TConnectorAssetIdentifier, p_trade: *const c_void, flags: u32);

// ---- exports ----
pub type DllInitializeLoginFn = unsafe extern "system" fn(
    key: PWideChar,
    user: PWideChar,
    password: PWideChar,
    state: TStateCallback,
    history: THistoryCallback,
    order_change: TOrderChangeCallback,
    account: TAccountCallback,
    new_trade: TNewTradeCallback,
    new_daily: TNewDailyCallback,
    price_book: TPriceBookCallback,
    offer_book: TOfferBookCallback,
    history_trade: THistoryTradeCallback,
    progress: TProgressCallback,
    tiny_book: TTinyBookCallback,
) -> i32;
pub type DllInitializeMarketLoginFn = unsafe extern "system" fn(
    key: PWideChar,
    user: PWideChar,
    password: PWideChar,
    state: TStateCallback,
    new_trade: TNewTradeCallback,
    new_daily: TNewDailyCallback,
    price_book: TPriceBookCallback,
    offer_book: TOfferBookCallback,
    history_trade: THistoryTradeCallback,
    progress: TProgressCallback,
    tiny_book: TTinyBookCallback,
) -> i32;
pub type DllFinalizeFn = unsafe extern "system" fn() -> i32;
pub type TickerFn = unsafe extern "system" fn(ticker: PWideChar, exchange: PWideChar) -> i32;
pub type GetHistoryTradesFn =
    unsafe extern "system" fn(ticker: PWideChar, exchange: PWideChar, start: PWideChar, end: PWideChar) -> i32;
pub type SendOrderFn = unsafe extern "system" fn(order: *const TConnectorSendOrder) -> i64;
pub type SetTradeCallbackV2Fn = unsafe extern "system" fn(callback: TConnectorTradeCallback) -> i32;
pub type TranslateTradeFn = unsafe extern "system" fn(p_trade: *const c_void, out: *mut TConnectorTrade) -> i32;

/// Every export the host resolves up front, in the order it reports missing ones.
pub const REQUIRED_EXPORTS: [&str; 14] = [
    "DLLInitializeLogin",
    "DLLInitializeMarketLogin",
    "DLLFinalize",
    "SubscribeTicker",
    "UnsubscribeTicker",
    "SubscribePriceBook",
    "UnsubscribePriceBook",
    "SubscribeOfferBook",
    "UnsubscribeOfferBook",
    "GetHistoryTrades",
    "SendOrder",
    "SetTradeCallbackV2",
    "SetHistoryTradeCallbackV2",
    "TranslateTrade",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_follow_the_manual() {
        assert_eq!(NL_INTERNAL_ERROR as u32, 0x8000_0001);
        assert_eq!(NL_INVALID_ARGS as u32, 0x8000_0003);
        assert_eq!(nl_name(i64::from(NL_INVALID_ARGS)), "NL_INVALID_ARGS");
        assert_eq!(nl_name(i64::from(NL_NOT_FOUND)), "NL_NOT_FOUND");
        assert_eq!(nl_name(0), "NL_OK");
        assert_eq!(nl_name(42), "an unknown code");
    }

    #[test]
    fn the_asset_record_is_packed() {
        assert_eq!(size_of::<TAssetIDRec>(), 2 * size_of::<usize>() + 4);
    }
}
