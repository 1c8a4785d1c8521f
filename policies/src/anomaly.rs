//! `[anomaly]`: the margins of the ransomware early warning, in
//! `[defaults.GROUP]` / `[defaults.all]`, at the top of a PD file, or on one
//! source (`[hosts.sources.anomaly]`). Every key is optional; a key nobody
//! sets keeps the controller's built-in value (see `docs/policies.md`).
//!
//! ```toml
//! [anomaly]
//! history = 28            # clean backups the baseline is computed over
//! min_history = 3         # clean backups before the baseline is trusted
//! margin = 6              # how many MAD-sigmas above normal flags
//! entropy_share = "2%"    # files turned random in one backup that can flag
//! extension_share = "2%"  # files renamed to another extension that can flag
//! slow_nights = 7         # nights a slow attack is summed over
//! slow_share = "5%"       # files turned random over those nights that flag
//! min_files = 10          # fewer files than this never flag (tiny sources)
//! weekday_rhythm = true   # compare Mondays with Mondays when data has a weekly rhythm
//! ```

use crate::model::AnomalyPolicy;
use crate::reader::{Ctx, Located, Table};

pub(crate) const ANOMALY_KEYS: [&str; 9] = [
    "history",
    "min_history",
    "margin",
    "entropy_share",
    "extension_share",
    "slow_nights",
    "slow_share",
    "min_files",
    "weekday_rhythm",
];

/// The longest baseline (the controller keeps 120 backups per source).
const MAX_HISTORY: u32 = 90;

/// Reads an `[anomaly]` table (keys already checked by the caller).
pub(crate) fn parse(cx: &mut Ctx, t: &Table) -> AnomalyPolicy {
    AnomalyPolicy {
        history: bounded(cx, t, "history", 3, MAX_HISTORY),
        min_history: bounded(cx, t, "min_history", 0, MAX_HISTORY),
        margin: margin(cx, t),
        entropy_share: share(cx, t, "entropy_share"),
        extension_share: share(cx, t, "extension_share"),
        slow_nights: bounded(cx, t, "slow_nights", 2, 30),
        slow_share: share(cx, t, "slow_share"),
        min_files: bounded(cx, t, "min_files", 1, 1_000_000),
        weekday_rhythm: t.boolean(cx, "weekday_rhythm"),
    }
}

fn bounded(cx: &mut Ctx, t: &Table, key: &str, min: u32, max: u32) -> Option<u32> {
    let n = t.count(cx, key, max)?;
    if n.value < min {
        cx.error(
            &n.span,
            format!("`{key}` in {} must be between {min} and {max}", t.name),
        );
        return None;
    }
    Some(n.value)
}

/// MAD-sigmas: a number from 1 to 50, as an integer or a string ("4.5").
fn margin(cx: &mut Ctx, t: &Table) -> Option<f64> {
    let text = t.string_or_integer(cx, "margin")?;
    match text.value.trim().parse::<f64>() {
        Ok(v) if (1.0..=50.0).contains(&v) => Some(v),
        _ => {
            cx.error_hint(
                &text.span,
                format!(
                    "`margin` in {} must be a number of MAD-sigmas from 1 to 50, not `{}`",
                    t.name, text.value
                ),
                "e.g. `margin = 6` (the built-in value); lower flags sooner and more often",
            );
            None
        }
    }
}

/// A share of the source's files: "2%", "0.5%" (0 < share ≤ 100%).
fn share(cx: &mut Ctx, t: &Table, key: &str) -> Option<f64> {
    let text: Located<String> = t.string(cx, key)?;
    match parse_share(&text.value) {
        Ok(v) => Some(v),
        Err(why) => {
            cx.error_hint(
                &text.span,
                format!("bad `{key}` in {}: {why}", t.name),
                format!("write a percentage of the source's files, e.g. `{key} = \"2%\"`"),
            );
            None
        }
    }
}

/// "2%" → 0.02; the percent sign is required so `0.02` is not read as 2%.
pub fn parse_share(text: &str) -> Result<f64, String> {
    let number = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(|| format!("`{text}` has no `%`"))?;
    let v: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a percentage"))?;
    if !(v > 0.0 && v <= 100.0) {
        return Err(format!("`{text}` must be more than 0% and at most 100%"));
    }
    Ok(v / 100.0)
}

impl AnomalyPolicy {
    /// `self` over `lower`: every field set here wins.
    pub fn over(&self, lower: &AnomalyPolicy) -> AnomalyPolicy {
        AnomalyPolicy {
            history: self.history.or(lower.history),
            min_history: self.min_history.or(lower.min_history),
            margin: self.margin.or(lower.margin),
            entropy_share: self.entropy_share.or(lower.entropy_share),
            extension_share: self.extension_share.or(lower.extension_share),
            slow_nights: self.slow_nights.or(lower.slow_nights),
            slow_share: self.slow_share.or(lower.slow_share),
            min_files: self.min_files.or(lower.min_files),
            weekday_rhythm: self.weekday_rhythm.or(lower.weekday_rhythm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_need_a_percent_sign_and_a_sensible_value() {
        assert_eq!(parse_share("2%"), Ok(0.02));
        assert_eq!(parse_share(" 0.5 %"), Ok(0.005));
        assert!(parse_share("0.02").is_err());
        assert!(parse_share("0%").is_err());
        assert!(parse_share("150%").is_err());
        assert!(parse_share("lima%").is_err());
    }

    #[test]
    fn the_upper_layer_wins_key_by_key() {
        let pd = AnomalyPolicy {
            margin: Some(8.0),
            ..Default::default()
        };
        let all = AnomalyPolicy {
            margin: Some(6.0),
            history: Some(14),
            ..Default::default()
        };
        let m = pd.over(&all);
        assert_eq!(m.margin, Some(8.0));
        assert_eq!(m.history, Some(14));
        assert_eq!(m.slow_share, None);
    }
}
