//! Writes feature frames for research, off the engine thread: the engine
//! copies each frame into a recycled buffer and hands it to a writer thread.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result, anyhow};
use tickhost_core::Candle;
use tickhost_core::engine::EngineObserver;
use tickhost_core::regime::RegimeReading;

struct FrameRecord {
    candle: Candle,
    regime: RegimeReading,
    values: Vec<f64>,
}

/// An [`EngineObserver`] that streams every candle's v3 frame to a CSV file.
pub struct FrameWriter {
    frames: rtrb::Producer<FrameRecord>,
    /// Buffers coming back from the writer, so steady state does not allocate.
    recycled: rtrb::Consumer<Vec<f64>>,
    writer: Option<JoinHandle<Result<u64>>>,
}

impl std::fmt::Debug for FrameWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameWriter").finish_non_exhaustive()
    }
}

impl FrameWriter {
    /// `columns`: the engine's feature schema names, in frame order.
    pub fn create(path: &Path, columns: &[String]) -> Result<Self> {
        let columns = columns.to_vec();
        let file = File::create(path).with_context(|| format!("cannot create feature file {}", path.display()))?;
        let (frames, mut incoming) = rtrb::RingBuffer::<FrameRecord>::new(1024);
        let (mut give_back, recycled) = rtrb::RingBuffer::<Vec<f64>>::new(1024);
        let shown = path.display().to_string();
        let writer = thread::Builder::new()
            .name("frame-writer".into())
            .spawn(move || -> Result<u64> {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                let write_err = |e| anyhow!("writing {shown}: {e}");
                write!(out, "ts_ms,symbol,regime,regime_confidence,open,high,low,close,volume").map_err(write_err)?;
                for name in &columns {
                    write!(out, ",{name}").map_err(write_err)?;
                }
                writeln!(out).map_err(write_err)?;
                let mut rows = 0u64;
                loop {
                    match incoming.pop() {
                        Ok(rec) => {
                            let c = &rec.candle;
                            write!(
                                out,
                                "{},{},{},{},{},{},{},{},{}",
                                c.open_ms,
                                c.symbol,
                                rec.regime.regime.name(),
                                rec.regime.confidence,
                                c.open,
                                c.high,
                                c.low,
                                c.close,
                                c.volume
                            )
                            .map_err(write_err)?;
                            for v in &rec.values {
                                write!(out, ",{v}").map_err(write_err)?;
                            }
                            writeln!(out).map_err(write_err)?;
                            rows += 1;
                            // If the pool is full the buffer is simply dropped.
                            let _ = give_back.push(rec.values);
                        }
                        Err(_) if incoming.is_abandoned() => break,
                        Err(_) => thread::sleep(std::time::Duration::from_micros(200)),
                    }
                }
                out.flush().map_err(write_err)?;
                Ok(rows)
            })
            .context("cannot start the frame writer thread")?;
        Ok(Self { frames, recycled, writer: Some(writer) })
    }

    /// Waits for the writer to finish; returns the rows written.
    pub fn finish(mut self) -> Result<u64> {
        let writer = self.writer.take().ok_or_else(|| anyhow!("frame writer already finished"))?;
        drop(self);
        writer.join().map_err(|_| anyhow!("the frame writer panicked"))?
    }
}

impl EngineObserver for FrameWriter {
    fn on_candle(&mut self, candle: &Candle, v3: &[f64], regime: &RegimeReading) {
        let mut values = self.recycled.pop().unwrap_or_else(|_| Vec::with_capacity(v3.len()));
        values.clear();
        values.extend_from_slice(v3);
        let mut record = FrameRecord { candle: *candle, regime: *regime, values };
        // Research output must be complete, so a full ring waits for the writer.
        while let Err(rtrb::PushError::Full(back)) = self.frames.push(record) {
            if self.frames.is_abandoned() {
                // The writer died; finish() reports its error.
                return;
            }
            record = back;
            thread::yield_now();
        }
    }
}
