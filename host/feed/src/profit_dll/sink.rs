//! The hand-off from the DLL's callback thread to the consumer: a bounded
//! SPSC ring, plus a bounded spill queue for when the ring is full.
//!
//! The policy for a full ring, and why: the DLL's thread must not be held
//! (the manual: slow callbacks delay its single internal queue and then the
//! connection), and accepted data must not be lost. So a callback that finds
//! the ring full spins for at most [`SinkConfig::full_ring_wait`] (default
//! 50 µs) and then moves the event, and every later one until the consumer
//! has caught up, to the spill queue (a `VecDeque` behind a mutex, touched
//! only in this overflow state, capacity [`SinkConfig::spill_capacity`]).
//! Order is kept: the consumer takes the spill only when the ring is empty,
//! and the producer goes back to the ring only once the spill is empty.
//! Only past the spill capacity is an event dropped, and counted
//! (`dropped_spill_full`): memory stays bounded by ring + spill.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::events::DllEvent;

#[derive(Clone, Copy, Debug)]
pub struct SinkConfig {
    /// Events between the callback thread and the consumer.
    pub ring_capacity: usize,
    /// How long a callback may wait for ring space before spilling.
    pub full_ring_wait: Duration,
    /// Events that may wait in the spill queue; past that they are dropped and counted.
    pub spill_capacity: usize,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self { ring_capacity: 1 << 16, full_ring_wait: Duration::from_micros(50), spill_capacity: 1 << 22 }
    }
}

/// What the callbacks did, readable from any thread.
#[derive(Debug, Default)]
pub struct FeedCounters {
    pub events: AtomicU64,
    pub trades: AtomicU64,
    pub history_trades: AtomicU64,
    pub v2_trades: AtomicU64,
    pub edits: AtomicU64,
    /// Events that went through the spill queue (the ring was full past the wait budget).
    pub spilled: AtomicU64,
    /// Largest spill queue seen.
    pub spill_high_water: AtomicU64,
    /// Events lost because ring and spill were both full.
    pub dropped_spill_full: AtomicU64,
    /// Strings that were null, not UTF-16 ASCII where a ticker must be, or too long.
    pub malformed_strings: AtomicU64,
    /// Trades whose date did not parse; kept with the previous trade's time.
    pub bad_dates: AtomicU64,
    /// Events dropped because they could not be attributed or valued
    /// (malformed ticker, NaN price, no time at all).
    pub dropped_malformed: AtomicU64,
    pub unknown_trade_types: AtomicU64,
    /// Panics caught inside a callback (the event is dropped, the DLL thread unharmed).
    pub callback_panics: AtomicU64,
    /// Callbacks after the feed was stopped (ignored).
    pub late_callbacks: AtomicU64,
    /// `TranslateTrade` refusals.
    pub translate_failures: AtomicU64,
    /// Events of callbacks the host does not use (account list, order history).
    pub ignored: AtomicU64,
}

impl FeedCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// State shared by the producer, the consumer and the session.
#[derive(Debug)]
pub struct Shared {
    spill: Mutex<VecDeque<DllEvent>>,
    spill_len: AtomicU64,
    spill_capacity: usize,
    pub counters: FeedCounters,
    /// Event time of the last live trade: where a backfill starts.
    pub last_live_trade_ms: AtomicI64,
}

impl Shared {
    fn spill(&self) -> MutexGuard<'_, VecDeque<DllEvent>> {
        // A poisoned lock only means a panic elsewhere while holding it; the queue itself is intact.
        self.spill.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The producer side, owned by the callbacks.
#[derive(Debug)]
pub struct Sink {
    producer: rtrb::Producer<DllEvent>,
    spilling: bool,
    wait: Duration,
    pub shared: Arc<Shared>,
}

/// The consumer side.
#[derive(Debug)]
pub struct EventReceiver {
    consumer: rtrb::Consumer<DllEvent>,
    /// Events taken from the spill, older than anything still in the ring.
    taken: VecDeque<DllEvent>,
    shared: Arc<Shared>,
}

pub fn channel(config: SinkConfig) -> (Sink, EventReceiver) {
    let (producer, consumer) = rtrb::RingBuffer::new(config.ring_capacity.max(16));
    let shared = Arc::new(Shared {
        spill: Mutex::new(VecDeque::new()),
        spill_len: AtomicU64::new(0),
        spill_capacity: config.spill_capacity,
        counters: FeedCounters::default(),
        last_live_trade_ms: AtomicI64::new(i64::MIN),
    });
    (
        Sink { producer, spilling: false, wait: config.full_ring_wait, shared: Arc::clone(&shared) },
        EventReceiver { consumer, taken: VecDeque::new(), shared },
    )
}

impl Sink {
    /// Hands one event over; returns only after it is in the ring or the
    /// spill (or counted as dropped), within the wait budget.
    pub fn push(&mut self, event: DllEvent) {
        FeedCounters::bump(&self.shared.counters.events);
        if !self.spilling {
            let mut event = event;
            match self.producer.push(event) {
                Ok(()) => return,
                Err(rtrb::PushError::Full(back)) => event = back,
            }
            let started = Instant::now();
            loop {
                std::hint::spin_loop();
                match self.producer.push(event) {
                    Ok(()) => return,
                    Err(rtrb::PushError::Full(back)) => event = back,
                }
                if started.elapsed() >= self.wait {
                    break;
                }
            }
            self.spilling = true;
            self.spill(event);
            return;
        }
        self.spill(event);
    }

    fn spill(&mut self, event: DllEvent) {
        let shared = Arc::clone(&self.shared);
        let mut spill = shared.spill();
        if spill.is_empty() && self.producer.slots() > 0 {
            // The consumer caught up: back to the ring, in order.
            self.spilling = false;
            if self.producer.push(event).is_ok() {
                return;
            }
            self.spilling = true;
        }
        if spill.len() >= shared.spill_capacity {
            FeedCounters::bump(&shared.counters.dropped_spill_full);
            return;
        }
        spill.push_back(event);
        let len = spill.len() as u64;
        shared.spill_len.store(len, Ordering::Release);
        FeedCounters::bump(&shared.counters.spilled);
        shared.counters.spill_high_water.fetch_max(len, Ordering::Relaxed);
    }
}

impl EventReceiver {
    /// The next event in callback order, if any; never waits.
    pub fn pop(&mut self) -> Option<DllEvent> {
        if let Some(e) = self.taken.pop_front() {
            return Some(e);
        }
        if let Ok(e) = self.consumer.pop() {
            return Some(e);
        }
        if self.shared.spill_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut spill = self.shared.spill();
        // Re-checked under the lock: while the spill holds events the
        // producer writes only there, so an empty ring now means every ring
        // event is older than the spill's.
        if !self.consumer.is_empty() {
            drop(spill);
            return self.consumer.pop().ok();
        }
        std::mem::swap(&mut *spill, &mut self.taken);
        self.shared.spill_len.store(0, Ordering::Release);
        drop(spill);
        self.taken.pop_front()
    }

    /// The producer is gone and everything it handed over was taken.
    pub fn is_finished(&self) -> bool {
        self.consumer.is_abandoned()
            && self.consumer.is_empty()
            && self.taken.is_empty()
            && self.shared.spill_len.load(Ordering::Acquire) == 0
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Events waiting (ring + spill).
    pub fn backlog(&self) -> usize {
        self.consumer.slots() + self.taken.len() + self.shared.spill_len.load(Ordering::Relaxed) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: i32) -> DllEvent {
        DllEvent::State { kind: 9, result: n }
    }

    fn n(e: DllEvent) -> i32 {
        match e {
            DllEvent::State { result, .. } => result,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_full_ring_spills_in_order_and_loses_nothing() {
        let (mut sink, mut rx) =
            channel(SinkConfig { ring_capacity: 16, full_ring_wait: Duration::from_micros(1), spill_capacity: 1000 });
        for i in 0..100 {
            sink.push(ev(i));
        }
        assert!(FeedCounters::get(&sink.shared.counters.spilled) >= 84);
        // Interleave consumption with more production: the order must hold.
        let mut got = Vec::new();
        for _ in 0..50 {
            got.push(n(rx.pop().expect("event")));
        }
        for i in 100..200 {
            sink.push(ev(i));
        }
        drop(sink);
        while let Some(e) = rx.pop() {
            got.push(n(e));
        }
        assert!(rx.is_finished());
        assert_eq!(got, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn past_the_spill_capacity_events_are_counted_as_dropped() {
        let (mut sink, mut rx) =
            channel(SinkConfig { ring_capacity: 16, full_ring_wait: Duration::ZERO, spill_capacity: 10 });
        for i in 0..40 {
            sink.push(ev(i));
        }
        assert_eq!(FeedCounters::get(&rx.shared().counters.dropped_spill_full), 14);
        let mut count = 0;
        while rx.pop().is_some() {
            count += 1;
        }
        assert_eq!(count, 26);
    }

    #[test]
    fn threads_in_parallel_keep_order() {
        let (mut sink, mut rx) = channel(SinkConfig {
            ring_capacity: 64,
            full_ring_wait: Duration::from_micros(5),
            spill_capacity: 1 << 20,
        });
        let producer = std::thread::spawn(move || {
            for i in 0..200_000 {
                sink.push(ev(i));
            }
        });
        let mut next = 0;
        while !rx.is_finished() {
            match rx.pop() {
                Some(e) => {
                    assert_eq!(n(e), next);
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().expect("producer");
        assert_eq!(next, 200_000);
    }
}
