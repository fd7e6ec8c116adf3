use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use tickhost_core::Symbol;
use tickhost_core::sim::{SessionGenerator, SessionSpec, weekdays_from};
use tickhost_feed::profit_csv::ProfitCsvWriter;

#[derive(Args, Debug)]
pub struct GenArgs {
    /// Output CSV file.
    #[arg(long, short)]
    pub out: PathBuf,
    /// First session date, YYYY-MM-DD (weekends are skipped).
    #[arg(long, default_value = "2024-01-08")]
    pub date: String,
    /// Number of sessions.
    #[arg(long, default_value_t = 1)]
    pub days: usize,
    /// Seed of the generator; the default reproduces examples/data/wdo-2024-01-08.csv.
    #[arg(long, default_value_t = 8)]
    pub seed: u64,
    /// Approximate trades per session.
    #[arg(long, default_value_t = 20_000)]
    pub trades_per_day: u32,
    #[arg(long, default_value = "WDOFUT")]
    pub symbol: String,
    /// Write the millisecond variant (time as HHMMSS.mmm).
    #[arg(long)]
    pub millis: bool,
}

fn parse_date(text: &str) -> Result<(i32, u32, u32)> {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else { bail!("--date {text:?}: expected YYYY-MM-DD") };
    let date = (y.parse()?, m.parse()?, d.parse()?);
    tickhost_core::time::days_from_civil(date.0, date.1, date.2)
        .with_context(|| format!("--date {text:?} is not a calendar date"))?;
    Ok(date)
}

pub fn run(args: GenArgs) -> Result<()> {
    let (y, m, d) = parse_date(&args.date)?;
    let symbol =
        Symbol::new(&args.symbol).with_context(|| format!("--symbol {:?} is not a valid ticker", args.symbol))?;
    if let Some(dir) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut writer =
        ProfitCsvWriter::new(BufWriter::with_capacity(1 << 20, file)).with_millis(args.millis).with_edit_column(true);
    let mut total = 0u64;
    for (day_index, (yy, mm, dd)) in weekdays_from(y, m, d, args.days).into_iter().enumerate() {
        let mut spec = SessionSpec::wdo(yy, mm, dd, args.seed.wrapping_add(day_index as u64));
        spec.symbol = symbol;
        spec.trades_target = args.trades_per_day;
        let mut session = SessionGenerator::new(spec);
        while let Some(trade) = session.next() {
            writer.write_trade(&trade, session.agents()).with_context(|| format!("writing {}", args.out.display()))?;
            total += 1;
        }
    }
    writer.finish().with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("wrote {total} trades in {} session(s) to {}", args.days, args.out.display());
    Ok(())
}
