//! The fields a PD file may set and `[defaults.GROUP]` may default:
//! schedules, retention, stores, RPO, replication, Object Lock,
//! verification and drills.
//!
//! Every value is checked where it is written (so a bad default is
//! reported once, in regency.toml, not once per PD that inherits it), and
//! kept as an `Option` so that layers can be stacked: built-in < `all` <
//! the PD's group < the PD file.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::anomaly;
use crate::diagnostic::WithHint;
use crate::drill::{self, DrillSettings};
use crate::duration::{parse_bandwidth, parse_duration, parse_percent, parse_window};
use crate::error::PolicyError;
use crate::model::{AnomalyPolicy, Site, StoreRef, Window};
use crate::reader::{Ctx, Located, Table};
use crate::retention::KeepPolicy;
use crate::schedule::Schedule;
use crate::suggest;

/// Keys of [`Settings`] at the top of a PD file or a defaults table.
pub(crate) const SETTINGS_KEYS: [&str; 11] = [
    "schedule",
    "retention",
    "onsite_store",
    "dr_store",
    "rpo",
    "replication",
    "object_lock_days",
    "verification",
    "retention_schedule",
    "drill",
    "anomaly",
];

const RETENTION_KEYS: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];
const REPLICATION_KEYS: [&str; 3] = ["windows", "bandwidth", "delay"];
const VERIFICATION_KEYS: [&str; 2] = ["schedule", "read_share"];

pub(crate) const CRON_HINT: &str = "write 5 fields in the regency's local time: minute hour day-of-month month day-of-week, e.g. `0 2 * * *` for 02:00 every day";

/// Ten years: longer Object Lock is almost surely a typo (days for hours).
const MAX_LOCK_DAYS: u32 = 3650;

#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub schedule: Option<Located<Schedule>>,
    pub retention: Option<Located<KeepPolicy>>,
    pub onsite_store: Option<Located<String>>,
    pub dr_store: Option<Located<String>>,
    pub rpo: Option<Duration>,
    pub windows: Option<Vec<Window>>,
    pub bandwidth: Option<u64>,
    pub delay: Option<Duration>,
    pub object_lock_days: Option<u32>,
    pub verification_schedule: Option<Located<Schedule>>,
    pub read_share: Option<u8>,
    pub retention_schedule: Option<Located<Schedule>>,
    pub drill: DrillSettings,
    pub anomaly: AnomalyPolicy,
    /// Keys written at this layer (dotted for nested ones), valid or not:
    /// a key that was written but is `None` was invalid and has been
    /// reported, so it must not also be reported missing.
    pub written: BTreeSet<String>,
}

/// What the settings parser needs from the regency file.
pub(crate) struct Env<'a> {
    /// A valid zone (UTC stands in when the regency's zone is wrong, so
    /// cron syntax is still checked).
    pub zone: &'a str,
    /// `None` when the regency's stores could not be read: store names are
    /// then not checked, rather than all reported unknown.
    pub stores: Option<&'a BTreeMap<String, StoreRef>>,
}

impl Settings {
    /// `self` over `lower`: every field set here wins.
    pub fn over(self, lower: &Settings) -> Settings {
        Settings {
            schedule: self.schedule.or_else(|| lower.schedule.clone()),
            retention: self.retention.or_else(|| lower.retention.clone()),
            onsite_store: self.onsite_store.or_else(|| lower.onsite_store.clone()),
            dr_store: self.dr_store.or_else(|| lower.dr_store.clone()),
            rpo: self.rpo.or(lower.rpo),
            windows: self.windows.or_else(|| lower.windows.clone()),
            bandwidth: self.bandwidth.or(lower.bandwidth),
            delay: self.delay.or(lower.delay),
            object_lock_days: self.object_lock_days.or(lower.object_lock_days),
            verification_schedule: self
                .verification_schedule
                .or_else(|| lower.verification_schedule.clone()),
            read_share: self.read_share.or(lower.read_share),
            retention_schedule: self
                .retention_schedule
                .or_else(|| lower.retention_schedule.clone()),
            drill: self.drill.over(&lower.drill),
            anomaly: self.anomaly.over(&lower.anomaly),
            written: self.written.union(&lower.written).cloned().collect(),
        }
    }
}

/// Reads the settings keys of `t` (its other keys are the caller's).
pub(crate) fn parse(cx: &mut Ctx, t: &Table, env: &Env) -> Settings {
    let mut s = Settings {
        schedule: schedule(cx, t, "schedule", env.zone),
        retention: retention(cx, t),
        onsite_store: store(cx, t, "onsite_store", Site::OnSite, env),
        dr_store: store(cx, t, "dr_store", Site::Dr, env),
        rpo: duration(cx, t, "rpo"),
        object_lock_days: t
            .count(cx, "object_lock_days", MAX_LOCK_DAYS)
            .map(|n| n.value),
        retention_schedule: schedule(cx, t, "retention_schedule", env.zone),
        ..Settings::default()
    };
    if let Some(r) = sub_table(cx, t, "replication", &REPLICATION_KEYS) {
        s.windows = windows(cx, &r);
        s.bandwidth = text_value(cx, &r, "bandwidth", parse_bandwidth);
        s.delay = duration(cx, &r, "delay");
    }
    if let Some(v) = sub_table(cx, t, "verification", &VERIFICATION_KEYS) {
        s.verification_schedule = schedule(cx, &v, "schedule", env.zone);
        s.read_share = v
            .string_or_integer(cx, "read_share")
            .and_then(|text| checked(cx, &text, parse_percent));
    }
    if let Some(d) = sub_table(cx, t, "drill", &drill::DRILL_KEYS) {
        s.drill = drill::parse(cx, &d, env);
    }
    if let Some(a) = sub_table(cx, t, "anomaly", &anomaly::ANOMALY_KEYS) {
        s.anomaly = anomaly::parse(cx, &a);
    }
    s.written = written_keys(t);
    s
}

/// Every settings key written in `t`, nested ones dotted
/// (`verification.schedule`), whether or not its value was valid.
fn written_keys(t: &Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (key, value) in t.table.iter() {
        let key = key.get_ref().as_ref();
        if !SETTINGS_KEYS.contains(&key) {
            continue;
        }
        out.insert(key.to_string());
        if let Some(sub) = value.get_ref().as_table() {
            out.extend(sub.keys().map(|k| format!("{key}.{}", k.get_ref())));
        }
    }
    out
}

/// A sub-table with its keys checked.
pub(crate) fn sub_table<'t, 'i>(
    cx: &mut Ctx,
    t: &Table<'t, 'i>,
    key: &str,
    keys: &[&str],
) -> Option<Table<'t, 'i>> {
    let (table, span) = t.table(cx, key)?;
    // `[defaults.all.retention]` inside a defaults table, `[retention]` at
    // the top of a PD file.
    let name = match t.name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(parent) => format!("[{parent}.{key}]"),
        None => format!("[{key}]"),
    };
    let sub = Table::new(table, span, name);
    sub.check_keys(cx, keys);
    Some(sub)
}

/// Applies `parse` to a located string, reporting its error there.
fn checked<T>(
    cx: &mut Ctx,
    text: &Located<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    parse(&text.value)
        .map_err(|why| cx.error(&text.span, why))
        .ok()
}

fn text_value<T>(
    cx: &mut Ctx,
    t: &Table,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let text = t.string(cx, key)?;
    checked(cx, &text, parse)
}

pub(crate) fn duration(cx: &mut Ctx, t: &Table, key: &str) -> Option<Duration> {
    text_value(cx, t, key, parse_duration)
}

/// A cron expression in the regency's zone; a bad field is pointed at
/// inside the string.
pub(crate) fn schedule(
    cx: &mut Ctx,
    t: &Table,
    key: &str,
    zone: &str,
) -> Option<Located<Schedule>> {
    let text = t.string(cx, key)?;
    match Schedule::parse(&text.value, zone) {
        Ok(s) => Some(Located::new(s, text.span)),
        Err(e) => {
            let inner = field_offset(&e, &text.value);
            let offset = cx.file.offset_in_string(&text.span, &text.value, inner);
            let d = cx
                .file
                .at_offset(offset, format!("bad `{key}` in {}: {e}", t.name))
                .with_hint(CRON_HINT);
            cx.push(d);
            None
        }
    }
}

/// Byte offset of the field a schedule error names, inside the expression.
fn field_offset(e: &PolicyError, expr: &str) -> usize {
    const FIELDS: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    let PolicyError::Field { field, .. } = e else {
        return expr.len() - expr.trim_start().len();
    };
    let index = FIELDS.iter().position(|f| f == field).unwrap_or(0);
    let mut fields = expr.char_indices().filter(|(i, c)| {
        !c.is_whitespace() && (*i == 0 || expr[..*i].ends_with(char::is_whitespace))
    });
    fields.nth(index).map_or(0, |(i, _)| i)
}

fn retention(cx: &mut Ctx, t: &Table) -> Option<Located<KeepPolicy>> {
    let r = sub_table(cx, t, "retention", &RETENTION_KEYS)?;
    let get = |cx: &mut Ctx, key| r.count(cx, key, 100_000).map_or(0, |n| n.value);
    let keep = KeepPolicy {
        last: get(cx, "last"),
        hourly: get(cx, "hourly"),
        daily: get(cx, "daily"),
        weekly: get(cx, "weekly"),
        monthly: get(cx, "monthly"),
        yearly: get(cx, "yearly"),
    };
    if let Err(e) = keep.validate() {
        cx.error_hint(
            &r.span,
            e.to_string(),
            "e.g. `daily = 7`, `weekly = 4`, `monthly = 12`",
        );
        return None;
    }
    Some(Located::new(keep, r.span))
}

/// A store name that must exist in regency.toml and be of `site`.
fn store(cx: &mut Ctx, t: &Table, key: &str, site: Site, env: &Env) -> Option<Located<String>> {
    let name = t.string(cx, key)?;
    let Some(stores) = env.stores else {
        return Some(name);
    };
    let wanted = match site {
        Site::OnSite => "onsite",
        Site::Dr => "dr",
    };
    match stores.get(&name.value) {
        Some(s) if s.site == site => Some(name),
        Some(_) => {
            let fitting: Vec<&str> = stores
                .values()
                .filter(|s| s.site == site)
                .map(|s| s.name.as_str())
                .collect();
            cx.error_hint(
                &name.span,
                format!(
                    "`{key}` names store `{}`, which regency.toml puts at the other site",
                    name.value
                ),
                format!(
                    "{key} needs a store with site = \"{wanted}\": {}",
                    list_or_none(&fitting)
                ),
            );
            None
        }
        None => {
            let fitting: Vec<&str> = stores
                .values()
                .filter(|s| s.site == site)
                .map(|s| s.name.as_str())
                .collect();
            let hint =
                suggest::did_you_mean(&name.value, fitting.iter().copied()).unwrap_or_else(|| {
                    format!(
                        "stores with site = \"{wanted}\" in regency.toml: {}",
                        list_or_none(&fitting)
                    )
                });
            cx.error_hint(
                &name.span,
                format!("unknown store `{}` in `{key}`", name.value),
                hint,
            );
            None
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none yet (add one under [stores.NAME])".to_string()
    } else {
        names.join(", ")
    }
}

fn windows(cx: &mut Ctx, r: &Table) -> Option<Vec<Window>> {
    let list = r.strings(cx, "windows")?;
    let parsed: Vec<Option<Window>> = list
        .value
        .iter()
        .map(|w| checked(cx, w, parse_window))
        .collect();
    parsed.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_errors_point_at_the_bad_field() {
        let e = Schedule::parse("0 25 * * *", "UTC").unwrap_err();
        assert_eq!(field_offset(&e, "0 25 * * *"), 2);
        let e = Schedule::parse("0  2 * * MON-FRX", "UTC").unwrap_err();
        assert_eq!(field_offset(&e, "0  2 * * MON-FRX"), 9);
        let e = Schedule::parse(" 0 2 * *", "UTC").unwrap_err();
        assert_eq!(field_offset(&e, " 0 2 * *"), 1);
    }

    #[test]
    fn upper_layer_wins_field_by_field() {
        let lower = Settings {
            rpo: Some(Duration::from_secs(60)),
            bandwidth: Some(5),
            ..Settings::default()
        };
        let upper = Settings {
            rpo: Some(Duration::from_secs(120)),
            ..Settings::default()
        };
        let merged = upper.over(&lower);
        assert_eq!(merged.rpo, Some(Duration::from_secs(120)));
        assert_eq!(merged.bandwidth, Some(5));
    }
}
