//! Order books maintained from the price-book and offer-book callbacks.
//!
//! ProfitDLL addresses entries by `position` counted from the END of each
//! side's list, position 0 being the best level. The lists here are stored
//! the same way (best last), so each action is one index computation.

use tickhost_core::book::{BOOK_DEPTH_LEVELS, TopOfBook};
use tickhost_core::market::BookAction;
use tickhost_core::{BookSide, BookUpdate, Price};

use super::events::OfferUpdate;

/// A book action that does not fit the book as it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookError {
    pub action: BookAction,
    pub position: u32,
    pub len: usize,
}

/// One side's entries, best last.
#[derive(Clone, Debug, Default)]
pub struct SideList<T> {
    entries: Vec<T>,
}

impl<T: Copy> SideList<T> {
    /// `value` is the entry for Add and Edit; `merge` updates an existing entry on Edit.
    pub fn apply(
        &mut self,
        action: BookAction,
        position: u32,
        value: T,
        merge: impl FnOnce(&mut T, T),
    ) -> Result<(), BookError> {
        let len = self.entries.len();
        let p = position as usize;
        let err = BookError { action, position, len };
        match action {
            BookAction::Add => {
                if p > len {
                    return Err(err);
                }
                self.entries.insert(len - p, value);
            }
            BookAction::Edit => {
                let i = len.checked_sub(p + 1).ok_or(err)?;
                merge(&mut self.entries[i], value);
            }
            BookAction::Delete => {
                let i = len.checked_sub(p + 1).ok_or(err)?;
                self.entries.remove(i);
            }
            BookAction::DeleteFrom => {
                // Removes this position and every worse one.
                let i = len.checked_sub(p + 1).ok_or(err)?;
                self.entries.drain(..=i);
            }
            BookAction::FullBook => {
                // The snapshot array's layout is not part of our reference;
                // the DLL (and our simulator) follow a full book with Adds.
                self.entries.clear();
            }
        }
        Ok(())
    }

    /// The entry at `position` (0 = best).
    pub fn at(&self, position: usize) -> Option<&T> {
        self.entries.len().checked_sub(position + 1).map(|i| &self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Best first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().rev()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Level {
    pub price: Price,
    pub quantity: i64,
    pub orders: u32,
}

/// The aggregated (price) book of one symbol.
#[derive(Clone, Debug, Default)]
pub struct PriceBook {
    pub bids: SideList<Level>,
    pub asks: SideList<Level>,
    pub updates: u64,
    pub errors: u64,
}

impl PriceBook {
    pub fn apply(&mut self, u: &BookUpdate) -> Result<(), BookError> {
        self.updates += 1;
        let side = match u.side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        let level = Level { price: u.price, quantity: u.quantity, orders: u.orders };
        let result = side.apply(u.action, u.position, level, |old, new| {
            // An edit carries the level's new quantity and count; a zero price means "unchanged".
            old.quantity = new.quantity;
            old.orders = new.orders;
            if new.price != Price::default() {
                old.price = new.price;
            }
        });
        if result.is_err() {
            self.errors += 1;
        }
        result
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.at(0).copied()
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.at(0).copied()
    }

    /// What book features read: best prices and the depth of the best levels.
    pub fn top(&self) -> TopOfBook {
        let depth = |side: &SideList<Level>| side.iter().take(BOOK_DEPTH_LEVELS).map(|l| l.quantity as f64).sum();
        TopOfBook {
            best_bid: self.best_bid().map_or(0.0, |l| l.price.as_f64()),
            best_ask: self.best_ask().map_or(0.0, |l| l.price.as_f64()),
            bid_depth: depth(&self.bids),
            ask_depth: depth(&self.asks),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Offer {
    pub price: Price,
    pub quantity: i64,
    pub agent: i32,
    pub offer_id: i64,
}

/// The order-by-order (offer) book of one symbol.
#[derive(Clone, Debug, Default)]
pub struct OfferBook {
    pub bids: SideList<Offer>,
    pub asks: SideList<Offer>,
    pub updates: u64,
    pub errors: u64,
}

impl OfferBook {
    pub fn apply(&mut self, u: &OfferUpdate) -> Result<(), BookError> {
        self.updates += 1;
        let side = match u.side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        };
        let offer = Offer {
            price: u.price.unwrap_or_default(),
            quantity: u.quantity.unwrap_or(0),
            agent: u.agent.unwrap_or(0),
            offer_id: u.offer_id.unwrap_or(0),
        };
        let has = (u.price.is_some(), u.quantity.is_some(), u.agent.is_some(), u.offer_id.is_some());
        let result = side.apply(u.action, u.position, offer, |old, new| {
            // An edit changes only the fields it flags as present.
            if has.0 {
                old.price = new.price;
            }
            if has.1 {
                old.quantity = new.quantity;
            }
            if has.2 {
                old.agent = new.agent;
            }
            if has.3 {
                old.offer_id = new.offer_id;
            }
        });
        if result.is_err() {
            self.errors += 1;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickhost_core::Symbol;

    fn up(action: BookAction, side: BookSide, position: u32, price: f64, qty: i64) -> BookUpdate {
        BookUpdate {
            symbol: Symbol::new("WDOFUT").expect("symbol"),
            ts_ms: 0,
            action,
            side,
            position,
            price: Price::from_f64(price).expect("price"),
            quantity: qty,
            orders: 1,
        }
    }

    #[test]
    fn positions_count_from_the_end() {
        let mut b = PriceBook::default();
        // Levels arrive worst first, each new best at position 0.
        b.apply(&up(BookAction::Add, BookSide::Bid, 0, 4999.0, 10)).expect("add");
        b.apply(&up(BookAction::Add, BookSide::Bid, 0, 4999.5, 20)).expect("add");
        b.apply(&up(BookAction::Add, BookSide::Bid, 0, 5000.0, 30)).expect("add");
        assert_eq!(b.best_bid().map(|l| l.price.as_f64()), Some(5000.0));
        // A level inserted between the best and the second best.
        b.apply(&up(BookAction::Add, BookSide::Bid, 1, 4999.75, 5)).expect("add");
        let prices: Vec<f64> = b.bids.iter().map(|l| l.price.as_f64()).collect();
        assert_eq!(prices, vec![5000.0, 4999.75, 4999.5, 4999.0]);
        b.apply(&up(BookAction::Edit, BookSide::Bid, 0, 0.0, 7)).expect("edit");
        assert_eq!(b.best_bid().map(|l| (l.price.as_f64(), l.quantity)), Some((5000.0, 7)));
        b.apply(&up(BookAction::Delete, BookSide::Bid, 1, 0.0, 0)).expect("delete");
        let prices: Vec<f64> = b.bids.iter().map(|l| l.price.as_f64()).collect();
        assert_eq!(prices, vec![5000.0, 4999.5, 4999.0]);
        // Delete from position 1: that level and every worse one.
        b.apply(&up(BookAction::DeleteFrom, BookSide::Bid, 1, 0.0, 0)).expect("delete from");
        assert_eq!(b.bids.len(), 1);
        assert_eq!(b.top().imbalance(), 1.0);
    }

    #[test]
    fn an_action_past_the_book_is_an_error_not_a_panic() {
        let mut b = PriceBook::default();
        assert!(b.apply(&up(BookAction::Edit, BookSide::Ask, 3, 1.0, 1)).is_err());
        assert!(b.apply(&up(BookAction::Add, BookSide::Ask, 2, 1.0, 1)).is_err());
        assert!(b.apply(&up(BookAction::DeleteFrom, BookSide::Ask, 0, 1.0, 1)).is_err());
        assert_eq!(b.errors, 3);
        b.apply(&up(BookAction::Add, BookSide::Ask, 0, 1.0, 1)).expect("add");
        b.apply(&up(BookAction::FullBook, BookSide::Ask, 0, 0.0, 0)).expect("full");
        assert!(b.asks.is_empty());
    }
}
