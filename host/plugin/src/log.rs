//! The plugin's log: the `log` capability and the guest's stdout/stderr end
//! up here, line by line, under a budget per call. Excess is dropped and
//! counted, so a plugin flooding its output cannot slow the engine down.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Lines a plugin may log per call (including lifecycle calls).
pub const LINES_PER_CALL: u32 = 16;
/// Bytes a plugin may log per call.
pub const BYTES_PER_CALL: usize = 4096;
/// A line without a newline is cut at this length.
const MAX_LINE: usize = 1024;
/// Recent lines kept for inspection (admin API, tests).
const RECENT: usize = 64;

#[derive(Debug, Default)]
struct Inner {
    partial: Vec<u8>,
    lines_this_call: u32,
    bytes_this_call: usize,
    recent: VecDeque<String>,
}

/// One plugin instance's log.
#[derive(Debug)]
pub struct LogSink {
    plugin: String,
    inner: Mutex<Inner>,
    lines: AtomicU64,
    dropped: AtomicU64,
}

impl LogSink {
    pub fn new(plugin: &str) -> Arc<Self> {
        Arc::new(Self {
            plugin: plugin.to_string(),
            inner: Mutex::new(Inner::default()),
            lines: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        })
    }

    /// Starts a new call's budget.
    pub(crate) fn new_call(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.lines_this_call = 0;
            inner.bytes_this_call = 0;
        }
    }

    /// (lines emitted, lines dropped) since the last call, resetting both.
    pub(crate) fn take_counts(&self) -> (u64, u64) {
        (self.lines.swap(0, Relaxed), self.dropped.swap(0, Relaxed))
    }

    /// The most recent lines, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.inner.lock().map(|i| i.recent.iter().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn line(&self, level: &str, text: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        self.emit(&mut inner, level, text.as_bytes());
    }

    fn emit(&self, inner: &mut Inner, level: &str, text: &[u8]) {
        let text = &text[..text.len().min(MAX_LINE)];
        if inner.lines_this_call >= LINES_PER_CALL || inner.bytes_this_call + text.len() > BYTES_PER_CALL {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        inner.lines_this_call += 1;
        inner.bytes_this_call += text.len();
        self.lines.fetch_add(1, Relaxed);
        let line = String::from_utf8_lossy(text).into_owned();
        match level {
            "error" => tracing::error!(target: "tickhost_plugin::guest", plugin = %self.plugin, "{line}"),
            "warn" | "stderr" => tracing::warn!(target: "tickhost_plugin::guest", plugin = %self.plugin, "{line}"),
            "debug" => tracing::debug!(target: "tickhost_plugin::guest", plugin = %self.plugin, "{line}"),
            "trace" => tracing::trace!(target: "tickhost_plugin::guest", plugin = %self.plugin, "{line}"),
            _ => tracing::info!(target: "tickhost_plugin::guest", plugin = %self.plugin, "{line}"),
        }
        if inner.recent.len() == RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(format!("{level}: {line}"));
    }

    /// Raw bytes from stdout/stderr: split into lines.
    fn write_bytes(&self, level: &'static str, bytes: &[u8]) {
        let Ok(mut inner) = self.inner.lock() else { return };
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut inner.partial);
                self.emit(&mut inner, level, &line);
                let mut line = line;
                line.clear();
                inner.partial = line;
            } else if inner.partial.len() < MAX_LINE {
                inner.partial.push(b);
            } else {
                let line = std::mem::take(&mut inner.partial);
                self.emit(&mut inner, level, &line);
                inner.partial.push(b);
            }
        }
    }
}

/// stdout or stderr of a plugin, feeding its [`LogSink`].
#[derive(Debug, Clone)]
pub(crate) struct LogPipe {
    sink: Arc<LogSink>,
    level: &'static str,
}

impl LogPipe {
    pub(crate) fn stdout(sink: &Arc<LogSink>) -> Self {
        Self { sink: sink.clone(), level: "stdout" }
    }

    pub(crate) fn stderr(sink: &Arc<LogSink>) -> Self {
        Self { sink: sink.clone(), level: "stderr" }
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.write_bytes(self.level, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.sink.write_bytes(self.level, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
