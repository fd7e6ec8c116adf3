//! The outage journal: batches the store could not take (down, or behind),
//! appended to segment files in a directory and sent later in the order
//! they came. Bounded: past `max_bytes` a batch is dropped and counted
//! instead of filling the disk. Segments left by a crashed or stopped
//! process are found at open and sent first, so nothing accepted is lost
//! across restarts either.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Op, StoreError};

const PREFIX: &str = "journal-";
const SUFFIX: &str = ".jsonl";

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    /// (index, bytes, ops), oldest first; the last one may be open for appending.
    segments: VecDeque<(u64, u64, u64)>,
    writer: Option<(u64, BufWriter<File>)>,
    bytes: u64,
    ops: u64,
    dropped_ops: u64,
    /// Held for the journal's life: one writer per directory.
    _lock: File,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { what, path: path.to_path_buf(), source }
}

impl Journal {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io("cannot create the journal directory", dir))?;
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(io("cannot create", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Config(format!(
                "the journal {} is in use by another tickhost process; give this run its own store.journal_dir",
                dir.display()
            )));
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io("cannot list the journal directory", dir))? {
            let entry = entry.map_err(io("cannot list the journal directory", dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_prefix(PREFIX).and_then(|r| r.strip_suffix(SUFFIX))
                && let Ok(index) = n.parse::<u64>()
            {
                let len = entry.metadata().map_err(io("cannot stat", &entry.path()))?.len();
                found.push((index, len));
            }
        }
        found.sort_unstable();
        let mut j = Self {
            dir: dir.to_path_buf(),
            max_bytes: max_bytes.max(1 << 20),
            segment_bytes: (max_bytes / 16).clamp(1 << 16, 8 << 20),
            segments: VecDeque::new(),
            writer: None,
            bytes: 0,
            ops: 0,
            dropped_ops: 0,
            _lock: lock,
        };
        for (index, len) in found {
            let ops = j.read_segment(index)?.iter().map(|b| b.len() as u64).sum();
            j.segments.push_back((index, len, ops));
            j.bytes += len;
            j.ops += ops;
        }
        Ok(j)
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{PREFIX}{index:012}{SUFFIX}"))
    }

    pub fn is_empty(&self) -> bool {
        self.ops == 0 && self.segments.iter().all(|s| s.2 == 0)
    }

    /// Ops waiting in the journal.
    pub fn pending_ops(&self) -> u64 {
        self.ops
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ops refused because the journal was full.
    pub fn dropped_ops(&self) -> u64 {
        self.dropped_ops
    }

    /// Appends one batch; `Ok(false)` when the journal is full and the batch
    /// was dropped (counted).
    pub fn append(&mut self, ops: &[Op]) -> Result<bool, StoreError> {
        if ops.is_empty() {
            return Ok(true);
        }
        let mut line = serde_json::to_vec(ops).map_err(|e| StoreError::Protocol(format!("journal encode: {e}")))?;
        line.push(b'\n');
        let len = line.len() as u64;
        if self.bytes + len > self.max_bytes {
            self.dropped_ops += ops.len() as u64;
            return Ok(false);
        }
        let rotate = match (&self.writer, self.segments.back()) {
            (Some((index, _)), Some(back)) => back.0 != *index || back.1 + len > self.segment_bytes,
            _ => true,
        };
        if rotate {
            self.close_writer()?;
            let index = self.segments.back().map_or(0, |s| s.0 + 1);
            let path = self.path(index);
            let f = OpenOptions::new().create(true).append(true).open(&path).map_err(io("cannot create", &path))?;
            self.writer = Some((index, BufWriter::new(f)));
            self.segments.push_back((index, 0, 0));
        }
        let Some((index, w)) = self.writer.as_mut() else { return Ok(false) };
        let path = self.dir.join(format!("{PREFIX}{index:012}{SUFFIX}"));
        w.write_all(&line).map_err(io("cannot write the journal", &path))?;
        w.flush().map_err(io("cannot write the journal", &path))?;
        if let Some(back) = self.segments.back_mut() {
            back.1 += len;
            back.2 += ops.len() as u64;
        }
        self.bytes += len;
        self.ops += ops.len() as u64;
        Ok(true)
    }

    fn close_writer(&mut self) -> Result<(), StoreError> {
        if let Some((index, mut w)) = self.writer.take() {
            w.flush().map_err(io("cannot write the journal", &self.path(index)))?;
        }
        Ok(())
    }

    fn read_segment(&self, index: u64) -> Result<Vec<Vec<Op>>, StoreError> {
        let path = self.path(index);
        let f = File::open(&path).map_err(io("cannot open", &path))?;
        let mut out = Vec::new();
        let mut lines = BufReader::new(f).lines().peekable();
        let mut n = 0;
        while let Some(line) = lines.next() {
            n += 1;
            let line = line.map_err(io("cannot read", &path))?;
            match serde_json::from_str::<Vec<Op>>(&line) {
                Ok(ops) => out.push(ops),
                // A crash mid-append leaves a torn last line: that batch never
                // was acknowledged as journaled, so dropping it loses nothing
                // the writer counted as kept.
                Err(_) if lines.peek().is_none() => {
                    tracing::warn!(path = %path.display(), line = n, "torn journal line dropped")
                }
                Err(e) => {
                    return Err(StoreError::Protocol(format!(
                        "{} line {n} is not a journal batch ({e}); move it away to go on without it",
                        path.display()
                    )));
                }
            }
        }
        Ok(out)
    }

    /// The oldest segment's batches (closing it for appends if it is the
    /// open one). Call [`Journal::pop_oldest`] once they are all stored.
    pub fn oldest(&mut self) -> Result<Option<Vec<Vec<Op>>>, StoreError> {
        let Some(&(index, _, _)) = self.segments.front() else { return Ok(None) };
        if self.writer.as_ref().is_some_and(|(i, _)| *i == index) {
            self.close_writer()?;
        }
        self.read_segment(index).map(Some)
    }

    /// Deletes the oldest segment (its batches reached the store).
    pub fn pop_oldest(&mut self) -> Result<(), StoreError> {
        if let Some((index, len, ops)) = self.segments.pop_front() {
            if self.writer.as_ref().is_some_and(|(i, _)| *i == index) {
                self.close_writer()?;
            }
            let path = self.path(index);
            std::fs::remove_file(&path).map_err(io("cannot remove", &path))?;
            self.bytes -= len;
            self.ops -= ops;
        }
        Ok(())
    }
}
