//! Time travel: the entries of a stream between two instants, XRANGE from
//! `<start_ms>-0` to `<end_ms>-0` (the seeds' query), paged with COUNT so a
//! large range never arrives as one huge reply.

use crate::{Entry, Store, StoreError, StreamId};

/// Visits every entry of `key` from `<from_ms>-0` to `<to_ms>-0` in order,
/// `page` entries per round trip. Returns how many it visited.
pub fn time_travel(
    store: &mut dyn Store,
    key: &str,
    from_ms: u64,
    to_ms: u64,
    page: usize,
    mut visit: impl FnMut(&Entry),
) -> Result<u64, StoreError> {
    let page = page.max(1);
    let end = StreamId::new(to_ms, 0);
    let mut start = StreamId::new(from_ms, 0);
    let mut n = 0u64;
    loop {
        let entries = store.range(key, start, end, page)?;
        for e in &entries {
            visit(e);
        }
        n += entries.len() as u64;
        match entries.last() {
            Some(last) if entries.len() == page => match last.id.successor() {
                Some(next) if next <= end => start = next,
                _ => return Ok(n),
            },
            _ => return Ok(n),
        }
    }
}

/// All of them, collected.
pub fn time_travel_vec(
    store: &mut dyn Store,
    key: &str,
    from_ms: u64,
    to_ms: u64,
    page: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    time_travel(store, key, from_ms, to_ms, page, |e| out.push(e.clone()))?;
    Ok(out)
}
