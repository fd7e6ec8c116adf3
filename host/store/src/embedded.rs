//! The embedded default: the same keys and semantics as Valkey, in process,
//! for a laptop run with no server. Every change is appended to one local
//! file (JSON lines) and replayed at open, so a restart keeps the data; the
//! file is compacted at open once it holds mostly trimmed or deleted data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{AgentPerformance, Applied, Entry, Health, Op, PatternStats, Store, StoreError, StreamId};

#[derive(Serialize, Deserialize)]
enum Record {
    XAdd {
        key: String,
        id: StreamId,
        maxlen: u64,
        fields: Vec<(String, String)>,
    },
    Set {
        key: String,
        value: String,
        expires_ms: u64,
    },
    Feedback {
        agent: String,
        decision: String,
        pnl_brl: f64,
        reward: f64,
        win: bool,
    },
    Del {
        key: String,
    },
    Trim {
        key: String,
        min: StreamId,
    },
    Pattern {
        pattern: String,
        occurrence: String,
        ts_ms: i64,
        outcome: i8,
        move_points: f64,
    },
    /// A pattern's aggregate and the occurrences it counted (compaction).
    PatternAggregate {
        pattern: String,
        stats: PatternStats,
        seen: Vec<String>,
    },
    /// An agent's aggregate and the decisions it counted (compaction).
    Agent {
        agent: String,
        perf: AgentPerformance,
        seen: Vec<String>,
    },
}

#[derive(Default)]
struct Data {
    streams: HashMap<String, BTreeMap<StreamId, Vec<(String, String)>>>,
    /// value, expiry (ms since the epoch, 0 = none).
    kv: HashMap<String, (String, u64)>,
    seen: HashMap<String, HashSet<String>>,
    perf: HashMap<String, AgentPerformance>,
    /// Per `<kind>:<name>`: the aggregate and the occurrences counted.
    patterns: HashMap<String, (PatternStats, HashSet<String>)>,
}

impl Data {
    /// Applies one record; false when it changed nothing (a duplicate).
    fn apply(&mut self, r: &Record) -> bool {
        match r {
            Record::XAdd { key, id, maxlen, fields } => {
                let s = self.streams.entry(key.clone()).or_default();
                if s.last_key_value().is_some_and(|(last, _)| last >= id) {
                    return false;
                }
                s.insert(*id, fields.clone());
                if *maxlen > 0 {
                    while s.len() as u64 > *maxlen {
                        s.pop_first();
                    }
                }
                true
            }
            Record::Set { key, value, expires_ms } => {
                self.kv.insert(key.clone(), (value.clone(), *expires_ms));
                true
            }
            Record::Feedback { agent, decision, pnl_brl, reward, win } => {
                if !self.seen.entry(agent.clone()).or_default().insert(decision.clone()) {
                    return false;
                }
                let p = self.perf.entry(agent.clone()).or_default();
                p.total_decisions += 1;
                p.wins += u64::from(*win);
                p.total_pnl_brl += pnl_brl;
                p.total_reward += reward;
                p.success_rate = p.wins as f64 / p.total_decisions as f64;
                true
            }
            Record::Del { key } => {
                let a = self.streams.remove(key).is_some();
                let b = self.kv.remove(key).is_some();
                a || b
            }
            Record::Trim { key, min } => {
                let Some(s) = self.streams.get_mut(key) else { return false };
                let keep = s.split_off(min);
                let removed = !s.is_empty();
                *s = keep;
                removed
            }
            Record::Pattern { pattern, occurrence, ts_ms, outcome, move_points } => {
                let (stats, seen) = self.patterns.entry(pattern.clone()).or_default();
                if !seen.insert(occurrence.clone()) {
                    return false;
                }
                stats.occurrences += 1;
                match outcome.signum() {
                    1 => stats.wins += 1,
                    -1 => stats.losses += 1,
                    _ => stats.flat += 1,
                }
                stats.total_move_points += move_points;
                stats.last_seen_ms = stats.last_seen_ms.max(*ts_ms);
                true
            }
            Record::PatternAggregate { pattern, stats, seen } => {
                self.patterns.insert(pattern.clone(), (stats.clone(), seen.iter().cloned().collect()));
                true
            }
            Record::Agent { agent, perf, seen } => {
                self.perf.insert(agent.clone(), perf.clone());
                self.seen.insert(agent.clone(), seen.iter().cloned().collect());
                true
            }
        }
    }

    fn records(&self) -> impl Iterator<Item = Record> + '_ {
        let streams = self.streams.iter().flat_map(|(key, s)| {
            s.iter().map(|(id, fields)| Record::XAdd { key: key.clone(), id: *id, maxlen: 0, fields: fields.clone() })
        });
        let kv = self.kv.iter().map(|(key, (value, expires_ms))| Record::Set {
            key: key.clone(),
            value: value.clone(),
            expires_ms: *expires_ms,
        });
        let perf = self.perf.iter().map(|(agent, p)| Record::Agent {
            agent: agent.clone(),
            perf: p.clone(),
            seen: self.seen.get(agent).map(|s| s.iter().cloned().collect()).unwrap_or_default(),
        });
        let patterns = self.patterns.iter().map(|(pattern, (stats, seen))| Record::PatternAggregate {
            pattern: pattern.clone(),
            stats: stats.clone(),
            seen: seen.iter().cloned().collect(),
        });
        streams.chain(kv).chain(perf).chain(patterns)
    }

    fn live_records(&self) -> usize {
        self.streams.values().map(BTreeMap::len).sum::<usize>()
            + self.kv.len()
            + self.seen.values().map(HashSet::len).sum::<usize>()
            + self.patterns.values().map(|(_, s)| s.len()).sum::<usize>()
    }
}

pub struct EmbeddedStore {
    path: PathBuf,
    /// `None`: a read-only snapshot ([`EmbeddedStore::open_snapshot`]).
    file: Option<BufWriter<File>>,
    data: Data,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("path", &self.path).finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path` and loads it. A torn last
    /// line (a crash mid-write) is dropped; any other bad line is an error
    /// naming the line.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_mode(path, true)
    }

    /// The data in the file now, read-only and without taking the lock: for
    /// a reader (time travel) beside the writer that owns the file.
    pub fn open_snapshot(path: &Path) -> Result<Self, StoreError> {
        Self::open_mode(path, false)
    }

    fn open_mode(path: &Path, write: bool) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("cannot create the store directory", dir))?;
        }
        let mut data = Data::default();
        let mut lines_read = 0usize;
        if path.exists() {
            let f = File::open(path).map_err(io("cannot open the store file", path))?;
            let mut lines = BufReader::new(f).lines().peekable();
            let mut n = 0usize;
            while let Some(line) = lines.next() {
                n += 1;
                let line = line.map_err(io("cannot read the store file", path))?;
                if line.is_empty() {
                    continue;
                }
                match serde_json::from_str::<Record>(&line) {
                    Ok(r) => {
                        data.apply(&r);
                        lines_read += 1;
                    }
                    Err(_) if lines.peek().is_none() => {
                        tracing::warn!(path = %path.display(), line = n, "dropped a torn last line of the store file");
                    }
                    Err(e) => {
                        return Err(StoreError::Protocol(format!(
                            "{} line {n} is not a store record ({e}); move the file away to start empty",
                            path.display()
                        )));
                    }
                }
            }
        }
        if !write {
            return Ok(Self { path: path.to_path_buf(), file: None, data });
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io("cannot open", path))?;
        // One process at a time: two appending to one file would interleave lines.
        if file.try_lock().is_err() {
            return Err(StoreError::Config(format!(
                "{} is in use by another tickhost process; give this run its own store.embedded_path",
                path.display()
            )));
        }
        let mut store = Self { path: path.to_path_buf(), file: Some(BufWriter::new(file)), data };
        if lines_read > 2 * store.data.live_records() + 10_000 {
            store.compact()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the file with only the live data (atomic rename).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        let tmp = self.path.with_extension("compacting");
        {
            let f = File::create(&tmp).map_err(io("cannot create", &tmp))?;
            let mut w = BufWriter::new(f);
            for r in self.data.records() {
                serde_json::to_writer(&mut w, &r).map_err(|e| StoreError::Protocol(e.to_string()))?;
                w.write_all(b"\n").map_err(io("cannot write", &tmp))?;
            }
            w.flush().map_err(io("cannot write", &tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io("cannot replace", &self.path))?;
        let file = OpenOptions::new().append(true).open(&self.path).map_err(io("cannot open", &self.path))?;
        // The lock was on the replaced file; take it on the new one.
        let _ = file.try_lock();
        self.file = Some(BufWriter::new(file));
        Ok(())
    }

    fn log(&mut self, r: &Record) -> Result<(), StoreError> {
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Config(format!("{} was opened read-only", self.path.display())));
        };
        serde_json::to_writer(&mut *file, r).map_err(|e| StoreError::Protocol(e.to_string()))?;
        file.write_all(b"\n").map_err(io("cannot write the store file", &self.path))
    }

    fn record(&mut self, r: Record) -> Result<bool, StoreError> {
        let changed = self.data.apply(&r);
        if changed {
            self.log(&r)?;
        }
        Ok(changed)
    }
}

/// Glob match with `*` and `?` (what SCAN MATCH patterns use here).
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    fn apply(&mut self, ops: &[Op]) -> Result<Applied, StoreError> {
        let mut applied = Applied::default();
        for op in ops {
            let changed = match op {
                Op::XAdd { key, id, maxlen, fields } => {
                    self.record(Record::XAdd { key: key.clone(), id: *id, maxlen: *maxlen, fields: fields.clone() })?
                }
                Op::Set { key, value, ttl_s } => {
                    let expires_ms = if *ttl_s > 0 { now_ms() + ttl_s * 1000 } else { 0 };
                    self.record(Record::Set { key: key.clone(), value: value.clone(), expires_ms })?
                }
                Op::Feedback { agent, decision, pnl_brl, reward, win, .. } => self.record(Record::Feedback {
                    agent: agent.clone(),
                    decision: decision.clone(),
                    pnl_brl: *pnl_brl,
                    reward: *reward,
                    win: *win,
                })?,
                Op::Pattern { pattern, occurrence, ts_ms, outcome, move_points } => self.record(Record::Pattern {
                    pattern: pattern.clone(),
                    occurrence: occurrence.clone(),
                    ts_ms: *ts_ms,
                    outcome: *outcome,
                    move_points: *move_points,
                })?,
                // No subscribers live in this process.
                Op::Publish { .. } => true,
            };
            if changed {
                applied.written += 1;
            } else {
                applied.duplicates += 1;
            }
        }
        self.flush()?;
        Ok(applied)
    }

    fn range(&mut self, key: &str, from: StreamId, to: StreamId, count: usize) -> Result<Vec<Entry>, StoreError> {
        let Some(s) = self.data.streams.get(key) else { return Ok(Vec::new()) };
        if from > to {
            return Ok(Vec::new());
        }
        Ok(s.range(from..=to).take(count).map(|(id, f)| Entry { id: *id, fields: f.clone() }).collect())
    }

    fn recent(&mut self, key: &str, count: usize) -> Result<Vec<Entry>, StoreError> {
        let Some(s) = self.data.streams.get(key) else { return Ok(Vec::new()) };
        Ok(s.iter().rev().take(count).map(|(id, f)| Entry { id: *id, fields: f.clone() }).collect())
    }

    fn recent_until(&mut self, key: &str, until: StreamId, count: usize) -> Result<Vec<Entry>, StoreError> {
        let Some(s) = self.data.streams.get(key) else { return Ok(Vec::new()) };
        Ok(s.range(..=until).rev().take(count).map(|(id, f)| Entry { id: *id, fields: f.clone() }).collect())
    }

    fn get(&mut self, key: &str) -> Result<Option<String>, StoreError> {
        let now = now_ms();
        Ok(self.data.kv.get(key).filter(|(_, exp)| *exp == 0 || *exp > now).map(|(v, _)| v.clone()))
    }

    fn agent_performance(&mut self, agent: &str) -> Result<Option<AgentPerformance>, StoreError> {
        Ok(self.data.perf.get(agent).cloned())
    }

    fn pattern_stats(&mut self, kind: &str, name: &str) -> Result<Option<PatternStats>, StoreError> {
        Ok(self.data.patterns.get(&format!("{kind}:{name}")).map(|(s, _)| s.clone()))
    }

    fn keys(&mut self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut out: Vec<String> = self
            .data
            .streams
            .keys()
            .chain(self.data.kv.iter().filter(|(_, (_, e))| *e == 0 || *e > now).map(|(k, _)| k))
            .filter(|k| glob(pattern.as_bytes(), k.as_bytes()))
            .cloned()
            .collect();
        for agent in self.data.perf.keys() {
            for k in [crate::keys::performance(agent), crate::keys::agent_decisions(agent)] {
                if glob(pattern.as_bytes(), k.as_bytes()) {
                    out.push(k);
                }
            }
        }
        for tag in self.data.patterns.keys() {
            for k in [crate::keys::pattern_key(tag), crate::keys::pattern_seen_key(tag)] {
                if glob(pattern.as_bytes(), k.as_bytes()) {
                    out.push(k);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn delete(&mut self, keys: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        for k in keys {
            n += u64::from(self.record(Record::Del { key: k.clone() })?);
        }
        self.flush()?;
        Ok(n)
    }

    fn trim_before(&mut self, key: &str, min_id: StreamId) -> Result<u64, StoreError> {
        let before = self.data.streams.get(key).map_or(0, BTreeMap::len);
        self.record(Record::Trim { key: key.to_string(), min: min_id })?;
        self.flush()?;
        Ok((before - self.data.streams.get(key).map_or(0, BTreeMap::len)) as u64)
    }

    fn ping(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn health(&mut self) -> Result<Health, StoreError> {
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let now = now_ms();
        let live_kv = self.data.kv.values().filter(|(_, e)| *e == 0 || *e > now).count();
        Ok(Health {
            backend: "embedded",
            nodes: 1,
            used_memory_bytes: bytes,
            keys: (self.data.streams.len() + live_kv + 2 * self.data.perf.len() + 2 * self.data.patterns.len()) as u64,
        })
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        match self.file.as_mut() {
            Some(f) => f.flush().map_err(io("cannot write the store file", &self.path)),
            None => Ok(()),
        }
    }
}
