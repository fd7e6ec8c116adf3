//! Loading a library that exports the ProfitDLL ABI and resolving every
//! export up front, so a wrong or partial library fails at start with the
//! full list of what it lacks, never later in the middle of a session.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};

use super::DllError;
use super::abi::{
    DllFinalizeFn, DllInitializeLoginFn, DllInitializeMarketLoginFn, GetHistoryTradesFn, REQUIRED_EXPORTS, SendOrderFn,
    SetTradeCallbackV2Fn, TickerFn, TranslateTradeFn,
};

/// The resolved exports. Function pointers are copied out of the library;
/// they stay valid because `_library` is kept alive alongside them.
#[derive(Debug)]
pub struct ProfitLibrary {
    pub path: PathBuf,
    pub initialize_login: DllInitializeLoginFn,
    pub initialize_market_login: DllInitializeMarketLoginFn,
    pub finalize: DllFinalizeFn,
    pub subscribe_ticker: TickerFn,
    pub unsubscribe_ticker: TickerFn,
    pub subscribe_price_book: TickerFn,
    pub unsubscribe_price_book: TickerFn,
    pub subscribe_offer_book: TickerFn,
    pub unsubscribe_offer_book: TickerFn,
    pub get_history_trades: GetHistoryTradesFn,
    pub send_order: SendOrderFn,
    pub set_trade_callback_v2: SetTradeCallbackV2Fn,
    pub set_history_trade_callback_v2: SetTradeCallbackV2Fn,
    pub translate_trade: TranslateTradeFn,
    _library: libloading::Library,
}

/// Looks up every name with `lookup`; `Err` lists all the missing ones.
pub fn missing_exports(mut has: impl FnMut(&str) -> bool) -> Vec<&'static str> {
    REQUIRED_EXPORTS.iter().copied().filter(|name| !has(name)).collect()
}

impl ProfitLibrary {
    pub fn load(path: &Path) -> Result<Self, DllError> {
        // SAFETY: loading runs the library's initialisers. The operator names
        // the library (the ProfitDLL or our simulator); trusting its code is
        // the point of loading it.
        let library = unsafe { libloading::Library::new(path) }
            .map_err(|e| DllError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        let missing = missing_exports(|name| {
            // SAFETY: only the symbol's presence is checked; the pointer is not used.
            unsafe { library.get::<*const ()>(name.as_bytes()) }.is_ok()
        });
        if !missing.is_empty() {
            return Err(DllError::MissingExports { path: path.to_path_buf(), missing: missing.join(", ") });
        }
        macro_rules! export {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the symbol exists (checked above) and its type is
                // the ABI's declaration of that export (abi.rs).
                let symbol = unsafe { library.get::<$ty>($name.as_bytes()) }
                    .map_err(|e| DllError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
                *symbol
            }};
        }
        Ok(Self {
            path: path.to_path_buf(),
            initialize_login: export!("DLLInitializeLogin", DllInitializeLoginFn),
            initialize_market_login: export!("DLLInitializeMarketLogin", DllInitializeMarketLoginFn),
            finalize: export!("DLLFinalize", DllFinalizeFn),
            subscribe_ticker: export!("SubscribeTicker", TickerFn),
            unsubscribe_ticker: export!("UnsubscribeTicker", TickerFn),
            subscribe_price_book: export!("SubscribePriceBook", TickerFn),
            unsubscribe_price_book: export!("UnsubscribePriceBook", TickerFn),
            subscribe_offer_book: export!("SubscribeOfferBook", TickerFn),
            unsubscribe_offer_book: export!("UnsubscribeOfferBook", TickerFn),
            get_history_trades: export!("GetHistoryTrades", GetHistoryTradesFn),
            send_order: export!("SendOrder", SendOrderFn),
            set_trade_callback_v2: export!("SetTradeCallbackV2", SetTradeCallbackV2Fn),
            set_history_trade_callback_v2: export!("SetHistoryTradeCallbackV2", SetTradeCallbackV2Fn),
            translate_trade: export!("TranslateTrade", TranslateTradeFn),
            _library: library,
        })
    }
}

/// Our simulator, loaded and configured through its `SimConfigure` export
/// (not part of ProfitDLL). Keep it alive while the feed runs: unloading the
/// library would reset the configuration.
#[derive(Debug)]
pub struct SimulatorHandle {
    _library: libloading::Library,
}

/// Loads the simulator at `path` and sets its configuration (the syntax of `PROFITDLL_SIM`).
pub fn configure_simulator(path: &Path, settings: &str) -> Result<SimulatorHandle, DllError> {
    let load_err = |reason: String| DllError::Load { path: path.to_path_buf(), reason };
    // SAFETY: as in ProfitLibrary::load: the operator names the library.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| load_err(e.to_string()))?;
    // SAFETY: SimConfigure takes one NUL-terminated UTF-16 string and returns an NL code.
    let configure = unsafe { library.get::<unsafe extern "system" fn(*const u16) -> i32>(b"SimConfigure") }
        .map_err(|_| load_err("not the tickhost simulator (no SimConfigure export)".into()))?;
    let text = super::decode::to_wide(settings);
    // SAFETY: `text` is NUL-terminated UTF-16 that outlives the call.
    let code = unsafe { configure(text.as_ptr()) };
    if code != super::abi::NL_OK {
        return Err(DllError::Config(format!("the simulator refused {settings:?} (see its message on stderr)")));
    }
    Ok(SimulatorHandle { _library: library })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_export_is_named() {
        let missing = missing_exports(|name| name != "SendOrder" && name != "TranslateTrade");
        assert_eq!(missing, vec!["SendOrder", "TranslateTrade"]);
        assert!(missing_exports(|_| true).is_empty());
    }
}
