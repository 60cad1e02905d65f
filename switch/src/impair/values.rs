//! The values impairment is written in, on the command line and in the
//! topology file alike: durations (`20ms`, `500us`, `1.5s`), shares
//! (`1%`, `0.5%`), rates (`10mbit`, `1gbit`, `64kbit`, `1500bit`) and sizes
//! (`64kb`, `1mb`, `1500`). Errors say what to write.

/// Nanoseconds from `20ms`, `500us`, `1.5s`, `250ns` (a bare number is
/// milliseconds, as netem takes it).
pub fn duration_ns(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = split_unit(t);
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "ms" | "msec" => 1e6,
        "us" | "usec" | "µs" => 1e3,
        "ns" | "nsec" => 1.0,
        "s" | "sec" => 1e9,
        _ => {
            return Err(format!(
                "{s:?} is not a duration: write it like \"20ms\", \"500us\" or \"1s\""
            ))
        }
    };
    let v: f64 = num.parse().map_err(|_| {
        format!("{s:?} is not a duration: write it like \"20ms\", \"500us\" or \"1s\"")
    })?;
    // An hour is far beyond any queue a line holds.
    if !(0.0..=3600e9).contains(&(v * scale)) {
        return Err(format!("{s:?} is out of range (0 to 1 hour)"));
    }
    Ok((v * scale).round() as u64)
}

/// A share from `1%`, `0.5%` (or a fraction `0.01`), as 0.0 to 1.0.
pub fn share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a share: write it like \"1%\" or \"0.5%\"");
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map_err(|_| bad())? / 100.0,
        None => t.parse::<f64>().map_err(|_| bad())?,
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("{s:?} is out of range (0% to 100%)"));
    }
    Ok(v)
}

/// Bits per second from `10mbit`, `1gbit`, `64kbit`, `9600bit` (also
/// `bps` for bytes per second, as tc reads it: `1mbps` is 8 Mbit/s).
pub fn rate_bps(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = split_unit(t);
    let u = unit.to_ascii_lowercase();
    let bad = || format!("{s:?} is not a rate: write it like \"10mbit\", \"1gbit\" or \"64kbit\"");
    let (prefix, per_byte) = if let Some(p) = u.strip_suffix("bit") {
        (p.to_string(), false)
    } else if let Some(p) = u.strip_suffix("bps") {
        (p.to_string(), true)
    } else {
        return Err(bad());
    };
    let mult = match prefix.as_str() {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return Err(bad()),
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    let bps = v * mult * if per_byte { 8.0 } else { 1.0 };
    if !(1.0..=1e12).contains(&bps) {
        return Err(format!("{s:?} is out of range (1bit to 1tbit)"));
    }
    Ok(bps.round() as u64)
}

/// Bytes from `1500`, `64kb`, `1mb` (`k`/`kib` are 1024, as tc reads sizes).
pub fn size_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = split_unit(t);
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size: write it like \"1500\", \"64kb\" or \"4mb\""
            ))
        }
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write it like \"1500\", \"64kb\" or \"4mb\""))?;
    if !(0.0..=(1u64 << 32) as f64).contains(&(v * mult as f64)) {
        return Err(format!("{s:?} is out of range (at most 4gb)"));
    }
    Ok((v * mult as f64) as u64)
}

/// The number and the unit after it.
fn split_unit(t: &str) -> (&str, &str) {
    let at = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    (t[..at].trim(), t[at..].trim())
}

/// A duration in words, as the user would write it (`20ms`, `500us`).
pub fn show_ns(ns: u64) -> String {
    if ns == 0 {
        "0ms".into()
    } else if ns.is_multiple_of(1_000_000_000) {
        format!("{}s", ns / 1_000_000_000)
    } else if ns.is_multiple_of(1_000_000) {
        format!("{}ms", ns / 1_000_000)
    } else if ns.is_multiple_of(1000) {
        format!("{}us", ns / 1000)
    } else {
        format!("{ns}ns")
    }
}

/// A rate in words (`10mbit`).
pub fn show_bps(bps: u64) -> String {
    for (div, p) in [(1_000_000_000, "g"), (1_000_000, "m"), (1000, "k")] {
        if bps >= div && bps.is_multiple_of(div) {
            return format!("{}{p}bit", bps / div);
        }
    }
    format!("{bps}bit")
}

/// A share in words (`1%`).
pub fn show_share(v: f64) -> String {
    format!("{}%", (v * 100.0 * 1e6).round() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns("20ms"), Ok(20_000_000));
        assert_eq!(duration_ns("500us"), Ok(500_000));
        assert_eq!(duration_ns("1.5s"), Ok(1_500_000_000));
        assert_eq!(duration_ns("7"), Ok(7_000_000));
        assert!(duration_ns("20 parsecs").unwrap_err().contains("\"20ms\""));
        assert!(duration_ns("-1ms").is_err());
        assert_eq!(show_ns(20_000_000), "20ms");
        assert_eq!(show_ns(500_000), "500us");
    }

    #[test]
    fn shares_rates_sizes() {
        assert_eq!(share("10%"), Ok(0.1));
        assert_eq!(share("0.5%"), Ok(0.005));
        assert_eq!(share("0.25"), Ok(0.25));
        assert!(share("150%").is_err());
        assert!(share("lots").unwrap_err().contains("\"1%\""));
        assert_eq!(rate_bps("10mbit"), Ok(10_000_000));
        assert_eq!(rate_bps("1gbit"), Ok(1_000_000_000));
        assert_eq!(rate_bps("1.5Mbit"), Ok(1_500_000));
        assert_eq!(rate_bps("1mbps"), Ok(8_000_000));
        assert!(rate_bps("10").unwrap_err().contains("\"10mbit\""));
        assert_eq!(show_bps(10_000_000), "10mbit");
        assert_eq!(size_bytes("64kb"), Ok(65536));
        assert_eq!(size_bytes("1500"), Ok(1500));
        assert!(size_bytes("1 parsec").is_err());
        assert_eq!(show_share(0.005), "0.5%");
    }
}
