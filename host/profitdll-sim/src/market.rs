//! The simulated market behind the exports: trade sources (core's synthetic
//! B3 sessions or a Profit CSV), the history that `GetHistoryTrades`
//! answers from (with exchange corrections applied), and a price book.

use std::collections::HashMap;
use std::io::BufReader;

use tickhost_core::sim::{SessionGenerator, SessionSpec};
use tickhost_core::{Price, Symbol, Trade};
use tickhost_feed::profit_csv::{BadRowPolicy, ProfitCsvOptions, ProfitCsvReader};

use crate::config::SimConfig;

enum Source {
    Synthetic(Vec<(SessionGenerator, Option<Trade>)>),
    Csv(Box<ProfitCsvReader<BufReader<std::fs::File>>>),
}

pub struct Market {
    config: SimConfig,
    source: Source,
    symbols: Vec<Symbol>,
    /// Every trade made so far, latest version (an edit replaces its trade).
    history: Vec<Trade>,
    index: HashMap<(Symbol, u64), usize>,
    pub generated: u64,
    pub exhausted: bool,
    pub last_price: Option<Price>,
}

impl std::fmt::Debug for Market {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Market").field("generated", &self.generated).field("symbols", &self.symbols).finish()
    }
}

fn spec_for(symbol: Symbol, config: &SimConfig, n: usize) -> SessionSpec {
    let (y, m, d) = config.date;
    let mut spec = SessionSpec::wdo(y, m, d, config.seed.wrapping_add(n as u64 * 7919));
    spec.symbol = symbol;
    spec.trades_target = config.trades;
    if symbol.as_str().starts_with("WIN") {
        spec.tick = Price::from_raw(5 * Price::SCALE);
        spec.point_value = 0.2;
        spec.start_price = Price::from_raw(132_000 * Price::SCALE);
    }
    spec
}

impl Market {
    pub fn new(config: SimConfig) -> Result<Self, String> {
        let source = match &config.csv {
            Some(path) => {
                let opts = ProfitCsvOptions { on_bad_row: BadRowPolicy::Skip, ..ProfitCsvOptions::default() };
                let reader = ProfitCsvReader::open(path, opts).map_err(|e| e.to_string())?;
                Source::Csv(Box::new(reader))
            }
            None => Source::Synthetic(Vec::new()),
        };
        Ok(Self {
            config,
            source,
            symbols: Vec::new(),
            history: Vec::new(),
            index: HashMap::new(),
            generated: 0,
            exhausted: false,
            last_price: None,
        })
    }

    /// Makes sure `symbol` trades (a synthetic session starts for it).
    pub fn add_symbol(&mut self, symbol: Symbol) {
        if self.symbols.contains(&symbol) {
            return;
        }
        self.symbols.push(symbol);
        if let Source::Synthetic(gens) = &mut self.source {
            let mut generator = SessionGenerator::new(spec_for(symbol, &self.config, gens.len()));
            let first = generator.next();
            gens.push((generator, first));
            self.exhausted = false;
        }
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The next trade in time order across symbols, recorded in the history.
    pub fn next_trade(&mut self) -> Option<Trade> {
        let trade = match &mut self.source {
            Source::Synthetic(gens) => {
                let i = gens
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, next))| next.map(|t| (i, t.ts_ms)))
                    .min_by_key(|&(_, ts)| ts)
                    .map(|(i, _)| i)?;
                let (generator, next) = &mut gens[i];
                let trade = next.take();
                *next = generator.next();
                trade
            }
            Source::Csv(reader) => loop {
                match reader.next_trade() {
                    Ok(Some(t)) if self.symbols.contains(&t.symbol) => break Some(t),
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break None,
                }
            },
        };
        let Some(trade) = trade else {
            self.exhausted = true;
            return None;
        };
        self.generated += 1;
        self.last_price = Some(trade.price);
        let key = (trade.symbol, trade.trade_number);
        match self.index.get(&key) {
            Some(&i) if trade.is_edit => self.history[i] = Trade { is_edit: false, ..trade },
            _ => {
                self.index.insert(key, self.history.len());
                self.history.push(Trade { is_edit: false, ..trade });
            }
        }
        Some(trade)
    }

    pub fn last_trade(&self) -> Option<Trade> {
        self.history.last().copied()
    }

    /// History of `symbol` between two times (inclusive), corrections applied.
    pub fn history(&self, symbol: Symbol, start_ms: i64, end_ms: i64) -> Vec<Trade> {
        self.history
            .iter()
            .filter(|t| t.symbol == symbol && t.ts_ms >= start_ms && t.ts_ms <= end_ms)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_corrected_version_of_each_trade() {
        let config = SimConfig { trades: 5_000, ..SimConfig::default() };
        let mut m = Market::new(config).expect("market");
        let wdo = Symbol::new("WDOFUT").expect("symbol");
        m.add_symbol(wdo);
        let mut edits = 0;
        let mut last = None;
        while let Some(t) = m.next_trade() {
            edits += usize::from(t.is_edit);
            last = Some(t);
        }
        let h = m.history(wdo, i64::MIN, i64::MAX);
        let originals = m.generated as usize - edits;
        assert_eq!(h.len(), originals, "an edit replaces, never adds");
        assert!(last.is_some());
        let mut numbers: Vec<u64> = h.iter().map(|t| t.trade_number).collect();
        numbers.dedup();
        assert_eq!(numbers.len(), originals);
    }
}
