//! Renders a backtest report: a readable table, JSON, and an equity-curve
//! plot as a self-contained SVG (opens in any browser; no font or image
//! library needed).

use std::fmt::Write as _;

use tickhost_core::report::BacktestReport;
use tickhost_core::time::LocalTime;

fn local(ts_ms: Option<i64>, utc_offset_minutes: i32) -> String {
    ts_ms.map_or_else(
        || "-".into(),
        |ts| {
            let t = LocalTime::from_epoch_ms(ts, utc_offset_minutes);
            format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute, t.second)
        },
    )
}

pub fn table(r: &BacktestReport, utc_offset_minutes: i32) -> String {
    let mut s = String::new();
    let pf = r.profit_factor.map_or_else(|| "n/a (no losing trade)".into(), |p| format!("{p:.2}"));
    let rows: Vec<(&str, String)> = vec![
        ("symbol", r.symbol.clone()),
        (
            "period",
            format!("{} -> {}", local(r.first_ts_ms, utc_offset_minutes), local(r.last_ts_ms, utc_offset_minutes)),
        ),
        ("market trades", r.trades_seen.to_string()),
        ("candles", r.decisions.candles.to_string()),
        ("round trips", r.totals.trades.to_string()),
        ("wins / losses", format!("{} / {}", r.totals.wins, r.totals.losses)),
        ("win rate", format!("{:.1}%", 100.0 * r.totals.win_rate)),
        ("PnL (points)", format!("{:.1}", r.totals.pnl_points)),
        ("PnL (BRL, net)", format!("{:.2}", r.totals.pnl_brl)),
        ("fees (BRL)", format!("{:.2}", r.fees_brl)),
        ("profit factor", pf),
        ("avg win / loss (BRL)", format!("{:.2} / {:.2}", r.avg_win_brl, r.avg_loss_brl)),
        ("Sharpe (ann.)", format!("{:.2}", r.sharpe)),
        ("Sortino (ann.)", format!("{:.2}", r.sortino)),
        ("max drawdown", format!("{:.2} BRL ({:.2}%)", r.max_drawdown_brl, 100.0 * r.max_drawdown_pct)),
        ("exposure", format!("{:.1}%", 100.0 * r.exposure)),
        ("trading state", format!("{:?}", r.final_trading_state).to_uppercase()),
    ];
    let _ = writeln!(s, "Backtest report");
    for (k, v) in rows {
        let _ = writeln!(s, "  {k:<22} {v}");
    }
    let _ = writeln!(
        s,
        "\n  {:<12} {:>8} {:>7} {:>6} {:>9} {:>11}",
        "regime", "candles", "trades", "win%", "points", "BRL"
    );
    for g in &r.per_regime {
        let _ = writeln!(
            s,
            "  {:<12} {:>8} {:>7} {:>5.1}% {:>9.1} {:>11.2}",
            g.regime.name(),
            g.candles,
            g.stats.trades,
            100.0 * g.stats.win_rate,
            g.stats.pnl_points,
            g.stats.pnl_brl
        );
    }
    let exits: Vec<String> = r.exits.iter().map(|(reason, n)| format!("{reason:?}={n}")).collect();
    let _ = writeln!(s, "\n  exits:      {}", if exits.is_empty() { "none".into() } else { exits.join(" ") });
    let d = &r.decisions;
    let _ = writeln!(
        s,
        "  decisions:  {} holds, {} signals, {} orders, {} refused by risk",
        d.holds, d.signals, d.orders, d.refused
    );
    let m = &r.models;
    if m.informed + m.fallbacks + m.no_model > 0 {
        let _ = writeln!(
            s,
            "  models:     {} buys/sells informed by a model ({} held by the blend), {} fell back to the native rule, {} in regimes without a model",
            m.informed, m.held, m.fallbacks, m.no_model
        );
    }
    let holds: Vec<String> = r.hold_reasons.iter().take(4).map(|(why, n)| format!("{why} ({n})")).collect();
    if !holds.is_empty() {
        let _ = writeln!(s, "  holds:      {}", holds.join(", "));
    }
    let refusals: Vec<String> =
        r.risk_refusals.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}={n}")).collect();
    if !refusals.is_empty() {
        let _ = writeln!(s, "  refusals:   {}", refusals.join(" "));
    }
    let i = &r.ingest;
    let _ = writeln!(
        s,
        "  ingest:     {} accepted, {} duplicates, {} edits ({} after candle close, {} unmatched), {} reordered, {} too late",
        i.accepted,
        i.duplicates,
        i.edits,
        r.edits_after_close,
        i.unmatched_edits,
        i.out_of_order_clamped,
        i.out_of_order_dropped
    );
    s
}

/// The equity curve with drawdown shading, as SVG. The x axis is trading
/// time (candle by candle), so nights and weekends take no room; dashed lines
/// mark each new session.
pub fn equity_svg(r: &BacktestReport, utc_offset_minutes: i32) -> String {
    let (w, h, left, right, top, bottom) = (960.0, 420.0, 80.0, 40.0, 40.0, 50.0);
    let pts = &r.equity_curve;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{} equity (BRL): {} trades, PnL {:.2} BRL, max drawdown {:.2}% (shaded)",
        r.symbol,
        r.totals.trades,
        r.totals.pnl_brl,
        100.0 * r.max_drawdown_pct
    );
    let _ = writeln!(svg, r#"<text x="{left}" y="24" font-size="15">{}</text>"#, xml_escape(&title));
    if pts.len() < 2 {
        let _ = writeln!(svg, r#"<text x="{left}" y="80">not enough candles to plot</text>"#);
        svg.push_str("</svg>\n");
        return svg;
    }
    let lo = pts.iter().map(|p| p.equity_brl).fold(r.capital_brl, f64::min);
    let hi = pts.iter().map(|p| p.equity_brl).fold(r.capital_brl, f64::max);
    let pad = ((hi - lo) * 0.05).max(1.0);
    let (lo, hi) = (lo - pad, hi + pad);
    let last = (pts.len() - 1) as f64;
    let x = |i: usize| left + i as f64 / last * (w - left - right);
    let y = |v: f64| top + (hi - v) / (hi - lo) * (h - top - bottom);
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.0}</text>"##,
            w - right,
            left - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
    }
    // Session boundaries, labelled with their date (thinned to at most ~10 labels).
    let day = |ts: i64| LocalTime::from_epoch_ms(ts, utc_offset_minutes);
    let starts: Vec<usize> = (0..pts.len())
        .filter(|&i| {
            i == 0 || {
                let (a, b) = (day(pts[i - 1].ts_ms), day(pts[i].ts_ms));
                (a.year, a.month, a.day) != (b.year, b.month, b.day)
            }
        })
        .collect();
    if starts.len() > 1 {
        let every = starts.len().div_ceil(10);
        for (n, &i) in starts.iter().enumerate() {
            let _ = writeln!(
                svg,
                r##"<line x1="{xx:.1}" y1="{top}" x2="{xx:.1}" y2="{:.1}" stroke="#bbb" stroke-dasharray="3,3"/>"##,
                h - bottom,
                xx = x(i)
            );
            if n % every == 0 {
                let d = day(pts[i].ts_ms);
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{:04}-{:02}-{:02}</text>"#,
                    x(i) + 2.0,
                    h - bottom + 18.0,
                    d.year,
                    d.month,
                    d.day
                );
            }
        }
    } else {
        for k in 0..=4 {
            let i = (last * f64::from(k) / 4.0) as usize;
            let t = day(pts[i].ts_ms);
            let anchor = match k {
                0 => "start",
                4 => "end",
                _ => "middle",
            };
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}">{:02}:{:02}</text>"#,
                x(i),
                h - bottom + 18.0,
                t.hour,
                t.minute
            );
        }
    }
    // Drawdown: the area between the running peak and equity.
    let mut peak = f64::NEG_INFINITY;
    let mut area = String::new();
    for (i, p) in pts.iter().enumerate() {
        peak = peak.max(p.equity_brl);
        let _ = write!(area, "{:.1},{:.1} ", x(i), y(peak));
    }
    for (i, p) in pts.iter().enumerate().rev() {
        let _ = write!(area, "{:.1},{:.1} ", x(i), y(p.equity_brl));
    }
    let _ = writeln!(svg, r##"<polygon points="{area}" fill="#f4c7c3" stroke="none"/>"##);
    let mut line = String::new();
    for (i, p) in pts.iter().enumerate() {
        let _ = write!(line, "{:.1},{:.1} ", x(i), y(p.equity_brl));
    }
    let _ = writeln!(svg, r##"<polyline points="{line}" fill="none" stroke="#1a73e8" stroke-width="1.5"/>"##);
    // Each round trip's exit: green a win, red a loss.
    for t in &r.round_trips {
        let i = pts.partition_point(|p| p.ts_ms < t.exit_ts_ms).min(pts.len() - 1);
        let colour = if t.pnl_brl > 0.0 { "#188038" } else { "#d93025" };
        let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, x(i), y(pts[i].equity_brl));
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{:.1}" height="{:.1}" fill="none" stroke="#888"/>"##,
        w - left - right,
        h - top - bottom
    );
    svg.push_str("</svg>\n");
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
