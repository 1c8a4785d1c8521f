//! The small value languages of policy files: durations (`26h`, `1h30m`),
//! bandwidths (`20MiB/s`, `100Mbit/s`), shares (`5%`) and daily windows
//! (`22:00-05:00`).
//!
//! Each parser returns the reason in words an operator can act on; the
//! caller attaches the file location.

use std::time::Duration;

use crate::model::Window;

/// Units a duration may be written in, with their length in seconds.
const DURATION_UNITS: [(&str, u64); 5] = [
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86_400),
    ("w", 7 * 86_400),
];

/// `26h`, `30m`, `2d`, `1h30m`, `45s`, `1w`. A bare number is refused:
/// `30` could mean seconds or minutes, and a wrong guess silently moves an
/// RPO alarm by a factor of 60.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "write a number and a unit: s, m, h, d or w, e.g. `26h`, `30m`, `1h30m`, `2d`";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("the duration is empty: {expected}"));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("`{text}` is not a duration: {expected}"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.chars().take_while(char::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = DURATION_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                if unit.is_empty() {
                    format!("`{text}` has a number without a unit: {expected}")
                } else {
                    format!("`{text}`: unknown unit `{unit}`: {expected}")
                }
            })?;
        let value: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        total = value
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = tail;
    }
    Ok(Duration::from_secs(total))
}

/// Renders a duration the way [`parse_duration`] reads it (`1d2h`), for
/// `explain` and error messages.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in DURATION_UNITS.iter().rev().skip(1) {
        if secs >= *len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Byte units for bandwidths, with bytes per unit. Bits are offered
/// because network people size links in Mbit/s.
const SIZE_UNITS: [(&str, f64); 10] = [
    ("B", 1.0),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("KiB", 1024.0),
    ("MiB", 1_048_576.0),
    ("GiB", 1_073_741_824.0),
    ("Kbit", 1e3 / 8.0),
    ("Mbit", 1e6 / 8.0),
    ("Gbit", 1e9 / 8.0),
];

/// `20MiB/s`, `2.5MB/s`, `100Mbit/s` (the `/s` may be left out) into
/// bytes per second.
pub fn parse_bandwidth(text: &str) -> Result<u64, String> {
    let expected =
        "write a rate such as `20MiB/s`, `2.5MB/s` or `100Mbit/s` (units B, KB, MB, GB, KiB, MiB, GiB, Kbit, Mbit, Gbit); leave `bandwidth` out for no limit";
    let trimmed = text.trim();
    let body = trimmed.strip_suffix("/s").unwrap_or(trimmed).trim_end();
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, unit) = body.split_at(split);
    let unit = unit.trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a bandwidth: {expected}"))?;
    let per_unit = SIZE_UNITS
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit) && (unit.len() > 1 || *u == "B"))
        .map(|(_, b)| *b)
        .ok_or_else(|| format!("`{text}`: unknown unit `{unit}`: {expected}"))?;
    let bytes = (value * per_unit).round();
    if bytes < 1.0 || !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(format!(
            "`{text}` is not a usable limit: it must be at least 1 B/s; leave `bandwidth` out for no limit"
        ));
    }
    Ok(bytes as u64)
}

/// `5%` or `5` into a whole percent 0-100.
pub fn parse_percent(text: &str) -> Result<u8, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!(
            "`{text}` is not a share: write a whole percentage from 0 to 100, e.g. `5%`"
        )),
    }
}

/// `22:00-05:00` into a [`Window`]; the end may be `24:00`, and an end
/// before the start wraps past midnight.
pub fn parse_window(text: &str) -> Result<Window, String> {
    let expected = "write `HH:MM-HH:MM` in the regency's local time, e.g. `22:00-05:00`";
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| format!("`{text}` is not a window: {expected}"))?;
    let start = parse_clock(start.trim(), false)
        .map_err(|why| format!("`{text}`: start {why}: {expected}"))?;
    let end =
        parse_clock(end.trim(), true).map_err(|why| format!("`{text}`: end {why}: {expected}"))?;
    if start == end {
        return Err(format!(
            "`{text}` starts and ends at the same time: to allow replication at any time, leave `windows` out"
        ));
    }
    Ok(Window {
        start_minute: start,
        end_minute: end,
    })
}

/// Minutes since midnight of `HH:MM`; `24:00` only as a window's end.
fn parse_clock(text: &str, is_end: bool) -> Result<u16, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not HH:MM"))?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(h) || !two_digits(m) {
        return Err(format!("`{text}` is not HH:MM"));
    }
    let (h, m): (u16, u16) = (h.parse().unwrap_or(99), m.parse().unwrap_or(99));
    let valid = (h < 24 && m < 60) || (is_end && h == 24 && m == 0);
    if !valid {
        return Err(format!("`{text}` is not a time of day"));
    }
    Ok(h * 60 + m)
}

/// `22:00-05:00`, the form [`parse_window`] reads.
pub fn format_window(w: &Window) -> String {
    let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    format!("{}-{}", clock(w.start_minute), clock(w.end_minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("26h"), Ok(Duration::from_secs(26 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30").unwrap_err().contains("without a unit"));
        assert!(parse_duration("3 days").is_err());
        assert!(parse_duration("5y")
            .unwrap_err()
            .contains("unknown unit `y`"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999w").is_err());
        assert_eq!(format_duration(Duration::from_secs(26 * 3600)), "1d2h");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn bandwidths() {
        assert_eq!(parse_bandwidth("20MiB/s"), Ok(20 * 1_048_576));
        assert_eq!(parse_bandwidth("2.5MB/s"), Ok(2_500_000));
        assert_eq!(parse_bandwidth("100Mbit/s"), Ok(12_500_000));
        assert_eq!(parse_bandwidth("512 KiB"), Ok(524_288));
        assert!(parse_bandwidth("20 MiBps").is_err());
        assert!(parse_bandwidth("fast").is_err());
        assert!(parse_bandwidth("0MiB/s").is_err());
        // `M` alone is ambiguous (bits or bytes, 1000 or 1024): refused.
        assert!(parse_bandwidth("20M/s").is_err());
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("5%"), Ok(5));
        assert_eq!(parse_percent("100"), Ok(100));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("2.5%").is_err());
    }

    #[test]
    fn windows() {
        let w = parse_window("22:00-05:00").unwrap();
        assert_eq!((w.start_minute, w.end_minute), (1320, 300));
        assert!(w.contains(1380) && w.contains(0) && !w.contains(300));
        assert_eq!(parse_window("00:00-24:00").unwrap().end_minute, 1440);
        assert!(parse_window("22:00").is_err());
        assert!(parse_window("25:00-05:00").unwrap_err().contains("start"));
        assert!(parse_window("22:00-5:00").unwrap_err().contains("end"));
        assert!(parse_window("24:00-05:00").is_err());
        assert!(parse_window("05:00-05:00").is_err());
        assert_eq!(format_window(&w), "22:00-05:00");
    }
}
