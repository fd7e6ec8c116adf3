//! Key names of reference/domain.md ("Storage layout in Valkey"), byte for
//! byte what the Python consumers build with `f"ticks:{symbol}:realtime"`.
//!
//! Market streams are single-key writes, so they need no hash tag and keep
//! their exact names. The one multi-key operation (feedback aggregated into
//! an agent's performance) uses keys whose `{agent}` part is a hash tag, so
//! both keys share a cluster slot.

/// Which tick stream a run writes: a live session is `realtime`, a replayed
/// or backtested file is `historical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TickStream {
    Realtime,
    Historical,
}

impl TickStream {
    pub fn as_str(self) -> &'static str {
        match self {
            TickStream::Realtime => "realtime",
            TickStream::Historical => "historical",
        }
    }
}

pub fn ticks(symbol: &str, kind: TickStream) -> String {
    format!("ticks:{symbol}:{}", kind.as_str())
}
pub fn candles(symbol: &str) -> String {
    format!("candles:{symbol}")
}
pub fn features(symbol: &str) -> String {
    format!("features:{symbol}")
}
pub fn signals(symbol: &str) -> String {
    format!("signals:{symbol}")
}
pub fn fills(symbol: &str) -> String {
    format!("fills:{symbol}")
}

pub const DECISION_STREAM: &str = "hmarl:decision:stream";
pub const FEEDBACK_STREAM: &str = "hmarl:feedback:stream";
/// Pub/sub channel of coordinated decisions.
pub const DECISIONS_CHANNEL: &str = "hmarl:decisions:stream";
/// MAXLEN of the two HMARL streams (domain.md).
pub const HMARL_STREAM_MAXLEN: u64 = 10_000;

pub fn decision(id: &str) -> String {
    format!("hmarl:decision:{id}")
}
pub fn feedback(id: &str) -> String {
    format!("hmarl:feedback:{id}")
}
pub fn flow_state(symbol: &str, ts_ms: i64) -> String {
    format!("hmarl:flow_state:{symbol}:{ts_ms}")
}
pub fn signal(id: &str) -> String {
    format!("hmarl:signal:{id}")
}
pub fn metrics(name: &str) -> String {
    format!("hmarl:metrics:{name}")
}
/// A pattern's aggregate (a hash: occurrences, wins, losses, flat,
/// total_move_points, last_seen_ms); permanent. `{kind:name}` is a hash tag
/// shared with [`pattern_seen`].
pub fn pattern(kind: &str, name: &str) -> String {
    pattern_key(&format!("{kind}:{name}"))
}
/// [`pattern`] of a `<kind>:<name>` tag.
pub fn pattern_key(tag: &str) -> String {
    format!("hmarl:pattern:{{{tag}}}")
}
/// The occurrences a pattern's aggregate counted (sorted set, score: time),
/// so an occurrence written twice is counted once.
pub fn pattern_seen(kind: &str, name: &str) -> String {
    pattern_seen_key(&format!("{kind}:{name}"))
}
pub fn pattern_seen_key(tag: &str) -> String {
    format!("hmarl:pattern:{{{tag}}}:seen")
}
/// Aggregated performance; `{agent}` is a hash tag shared with [`agent_decisions`].
pub fn performance(agent: &str) -> String {
    format!("hmarl:performance:{{{agent}}}")
}
/// Sorted set of an agent's decisions with feedback (score: time).
pub fn agent_decisions(agent: &str) -> String {
    format!("hmarl:agent:{{{agent}}}:decisions")
}
pub fn feedback_channel(agent: &str) -> String {
    format!("hmarl:feedback:{agent}")
}
pub fn signals_channel(symbol: &str) -> String {
    format!("hmarl:signals:{symbol}")
}

/// TTLs of domain.md, seconds.
pub mod ttl {
    pub const DECISION: u64 = 24 * 3600;
    pub const FEEDBACK: u64 = 7 * 24 * 3600;
    pub const FLOW_STATE: u64 = 3600;
    pub const SIGNAL: u64 = 2 * 3600;
    pub const METRICS: u64 = 24 * 3600;
    /// Patterns are permanent.
    pub const PATTERN: u64 = 0;
}

/// The part of `key` that decides its cluster slot: the first non-empty
/// `{...}`, else the whole key (the cluster spec's rule).
pub fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(len) = key[open + 1..].find('}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_python_consumers() {
        assert_eq!(ticks("WDOFUT", TickStream::Realtime), "ticks:WDOFUT:realtime");
        assert_eq!(ticks("WDOFUT", TickStream::Historical), "ticks:WDOFUT:historical");
        assert_eq!(features("WDOFUT"), "features:WDOFUT");
        assert_eq!(signals("WDOFUT"), "signals:WDOFUT");
    }

    #[test]
    fn the_feedback_keys_of_one_agent_share_a_slot() {
        assert_eq!(hash_tag(&performance("order_flow")), "order_flow");
        assert_eq!(hash_tag(&agent_decisions("order_flow")), "order_flow");
        assert_eq!(hash_tag("ticks:WDOFUT:realtime"), "ticks:WDOFUT:realtime");
        assert_eq!(pattern("tape", "sweep"), "hmarl:pattern:{tape:sweep}");
        assert_eq!(hash_tag(&pattern_seen("tape", "sweep")), hash_tag(&pattern("tape", "sweep")));
        assert_eq!(hash_tag("a{}b"), "a{}b");
    }
}
