//! A tiny direct-mapped cache from short byte strings to values.
//!
//! Agent names and trade-type names repeat on every row; `AgentDirectory`'s
//! SipHash map and `TradeType::from_profit_name`'s linear scan cost more than
//! the rest of a row's parsing together, while an exact compare against one
//! remembered key is a few nanoseconds. A miss only falls back to the slow
//! lookup, so collisions cost speed, never correctness.

/// Comfortably more than the brokers active in one contract, so collisions are rare.
const SLOTS: usize = 256;
const KEY_BYTES: usize = 24;

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    len: u8,
    key: [u8; KEY_BYTES],
    value: V,
}

#[derive(Debug)]
pub(super) struct SmallCache<V> {
    slots: Box<[Option<Slot<V>>; SLOTS]>,
}

impl<V: Copy> Default for SmallCache<V> {
    fn default() -> Self {
        Self { slots: Box::new([None; SLOTS]) }
    }
}

/// Mixes the length and the first and last eight bytes: enough to separate
/// broker names, and branch-free.
fn slot_of(key: &[u8]) -> usize {
    let mut head = [0u8; 8];
    let mut tail = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    tail[..n].copy_from_slice(&key[key.len() - n..]);
    let h = (u64::from_le_bytes(head) ^ u64::from_le_bytes(tail).rotate_left(29) ^ key.len() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - SLOTS.trailing_zeros())) as usize
}

impl<V: Copy> SmallCache<V> {
    /// The value for `key`, computing it with `slow` (and remembering it) on a miss.
    pub(super) fn get_or_insert(&mut self, key: &[u8], slow: impl FnOnce(&[u8]) -> V) -> V {
        if key.len() > KEY_BYTES {
            return slow(key);
        }
        let slot = &mut self.slots[slot_of(key)];
        // A byte loop, not `==` on slices: that calls `memcmp`, whose call
        // overhead exceeds comparing a dozen bytes.
        if let Some(s) = slot
            && usize::from(s.len) == key.len()
            && key.iter().zip(&s.key).all(|(a, b)| a == b)
        {
            return s.value;
        }
        let value = slow(key);
        let mut stored = [0u8; KEY_BYTES];
        stored[..key.len()].copy_from_slice(key);
        *slot = Some(Slot { len: key.len() as u8, key: stored, value });
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_of_the_exact_key() {
        let mut cache = SmallCache::default();
        // More keys than slots: evictions must never return a wrong value.
        let names: Vec<String> = (0..500).map(|i| format!("Broker {i}")).collect();
        for round in 0..2 {
            for (i, name) in names.iter().enumerate() {
                assert_eq!(cache.get_or_insert(name.as_bytes(), |_| i), i, "round {round}");
                assert_eq!(cache.get_or_insert(name.as_bytes(), |_| usize::MAX), i, "an immediate repeat hits");
            }
        }
        assert_eq!(cache.get_or_insert(b"Broker", |_| 1), 1, "a prefix is another key");
        let long = [b'x'; KEY_BYTES + 1];
        assert_eq!(cache.get_or_insert(&long, |_| 7), 7);
        assert_eq!(cache.get_or_insert(&long, |_| 8), 8, "long keys are never cached");
    }
}
