//! `--plot FILE.svg`: the forwarding rate by frame size (one bar per path)
//! and the latency distribution (one curve per path, smallest frame size).
//! Plain SVG written by hand: no dependency for two small charts.

use super::Report;
use std::fmt::Write;

const COLORS: [&str; 6] = [
    "#888888", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
];
const W: f64 = 460.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="11">"#,
        2.0 * W + 20.0,
        H + 60.0
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    rates(&mut o, r);
    latency(&mut o, r);
    o.push_str("</svg>\n");
    o
}

/// Names of the series: the generator's ceiling first, then the paths.
fn series(r: &Report) -> Vec<String> {
    let mut names = vec!["generator ceiling".to_string()];
    for s in &r.sizes {
        for p in &s.paths {
            if !names.contains(&p.path) {
                names.push(p.path.clone());
            }
        }
    }
    names
}

fn rates(o: &mut String, r: &Report) {
    let names = series(r);
    let value = |size: usize, name: &str| -> f64 {
        r.sizes
            .iter()
            .find(|s| s.size == size)
            .and_then(|s| {
                if name == "generator ceiling" {
                    Some(s.generator_ceiling.fps)
                } else {
                    s.paths.iter().find(|p| p.path == name).map(|p| p.max.fps)
                }
            })
            .unwrap_or(0.0)
    };
    let max = r
        .sizes
        .iter()
        .flat_map(|s| names.iter().map(move |n| (s.size, n)))
        .map(|(s, n)| value(s, n))
        .fold(1.0, f64::max);
    let (x0, y0, pw, ph) = (PAD, 30.0, W - PAD - 10.0, H - 60.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="18" font-size="13">Forwarding rate by frame size (frames/s)</text>"#,
        x0
    );
    axes(o, x0, y0, pw, ph);
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = y0 + ph - ph * k as f64 / 4.0;
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 4.0,
            y + 4.0,
            short(v)
        );
    }
    let groups = r.sizes.len().max(1) as f64;
    let gw = pw / groups;
    let bw = (gw * 0.8) / names.len() as f64;
    for (g, s) in r.sizes.iter().enumerate() {
        let gx = x0 + g as f64 * gw + gw * 0.1;
        for (i, n) in names.iter().enumerate() {
            let v = value(s.size, n);
            let h = ph * v / max;
            let _ = writeln!(
                o,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {} B: {}</title></rect>"#,
                gx + i as f64 * bw,
                y0 + ph - h,
                bw * 0.9,
                h,
                COLORS[i % COLORS.len()],
                esc(n),
                s.size,
                short(v)
            );
        }
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} B</text>"#,
            gx + gw * 0.4,
            y0 + ph + 14.0,
            s.size
        );
    }
    legend(o, &names, x0, H + 10.0);
}

fn latency(o: &mut String, r: &Report) {
    let Some(s) = r
        .sizes
        .iter()
        .find(|s| s.paths.iter().any(|p| p.latency.is_some()))
    else {
        return;
    };
    let ox = W + 20.0;
    let (x0, y0, pw, ph) = (ox + PAD, 30.0, W - PAD - 10.0, H - 60.0);
    let _ = writeln!(
        o,
        r#"<text x="{}" y="18" font-size="13">Latency, {} B at {:.0}% of each path's rate (µs, log)</text>"#,
        x0,
        s.size,
        r.latency_fraction * 100.0
    );
    axes(o, x0, y0, pw, ph);
    let lats: Vec<_> = s
        .paths
        .iter()
        .filter_map(|p| p.latency.as_ref().map(|l| (p, l)))
        .collect();
    let lo = lats
        .iter()
        .flat_map(|(_, l)| l.cdf.first())
        .map(|c| c.0)
        .fold(f64::MAX, f64::min)
        .max(0.1);
    let hi = lats.iter().map(|(_, l)| l.max_us).fold(lo * 10.0, f64::max);
    let (llo, lhi) = (lo.log10().floor(), hi.log10().ceil());
    let floor = 10f64.powf(llo);
    let xs = |us: f64| x0 + pw * ((us.max(floor).log10() - llo) / (lhi - llo));
    let mut d = llo;
    while d <= lhi {
        let x = xs(10f64.powf(d));
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x,
            y0 + ph + 14.0,
            short(10f64.powf(d))
        );
        d += 1.0;
    }
    for k in 0..=4 {
        let y = y0 + ph - ph * k as f64 / 4.0;
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}%</text>"#,
            x0 - 4.0,
            y + 4.0,
            k * 25
        );
    }
    let names = series(r);
    for (p, l) in &lats {
        let i = names.iter().position(|n| n == &p.path).unwrap_or(0);
        let pts: Vec<String> = l
            .cdf
            .iter()
            .map(|&(us, q)| format!("{:.1},{:.1}", xs(us), y0 + ph - ph * q))
            .collect();
        let _ = writeln!(
            o,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"#,
            COLORS[i % COLORS.len()],
            pts.join(" ")
        );
    }
}

fn axes(o: &mut String, x0: f64, y0: f64, pw: f64, ph: f64) {
    let _ = writeln!(
        o,
        r#"<path d="M{x0},{y0} V{} H{}" stroke="black" fill="none"/>"#,
        y0 + ph,
        x0 + pw
    );
}

fn legend(o: &mut String, names: &[String], x: f64, y: f64) {
    let mut cx = x;
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            o,
            r#"<rect x="{cx:.1}" y="{:.1}" width="10" height="10" fill="{}"/>"#,
            y,
            COLORS[i % COLORS.len()]
        );
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            cx + 14.0,
            y + 9.0,
            esc(n)
        );
        cx += 24.0 + 6.5 * n.len() as f64;
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
