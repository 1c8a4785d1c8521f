//! Backup schedules as operators write them: 5-field crontab expressions in
//! the regency's own time zone.
//!
//! The `cron` crate evaluates Quartz syntax instead (seconds first, weekdays
//! 1-7 from Sunday, day-of-month AND day-of-week). Rather than rewriting the
//! text piecewise, each crontab field is expanded here into the set of values
//! it denotes and handed to `cron` as a plain list: that sidesteps the
//! off-by-one weekday numbering in every form (`0`, `7`, `5-7`, `*/2`,
//! `MON-FRI/2`, ...) and lets errors name the field the operator got wrong.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::PolicyError;

/// The zones a schedule may be written in: the Indonesian zones (WIB is
/// both Asia/Jakarta and Asia/Pontianak, as West and Central Kalimantan use
/// the latter), and UTC for tests and for operators who prefer it.
pub const TIME_ZONES: [&str; 5] = [
    "Asia/Jakarta",
    "Asia/Pontianak",
    "Asia/Makassar",
    "Asia/Jayapura",
    "UTC",
];

/// A parsed crontab expression bound to a time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    expr: String,
    tz: Tz,
    /// Crontab fires when day-of-month OR day-of-week matches if both are
    /// restricted, whereas `cron` requires both; such an expression becomes
    /// two schedules whose union is the crontab meaning.
    crons: Vec<cron::Schedule>,
}

impl Schedule {
    /// Parses a 5-field crontab expression (`minute hour day-of-month month
    /// day-of-week`) to be evaluated in `tz`, one of [`TIME_ZONES`].
    ///
    /// Fields take `*`, numbers, ranges `a-b`, lists `a,b`, steps `*/n`,
    /// `a-b/n` and `a/n` (from `a` to the field's end). Months and weekdays
    /// take English names (`JAN`, `MON`, `monday`), case-insensitively.
    /// Day-of-week runs 0-7, where both 0 and 7 are Sunday; a range may end on
    /// Sunday (`FRI-SUN`). `?` means `*` in the two day fields. The usual
    /// shorthands `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly` and
    /// `@yearly`/`@annually` are accepted.
    ///
    /// As in Vixie cron, when both day fields are restricted (neither starts
    /// with `*` or `?`) a day matches if either field matches.
    pub fn parse(expr: &str, tz: &str) -> Result<Schedule, PolicyError> {
        let tz = parse_time_zone(tz)?;
        let text = expr.trim();
        let expanded = expand_shorthand(text).map_err(|reason| PolicyError::Schedule {
            expr: expr.to_string(),
            reason,
        })?;
        let fields: Vec<&str> = expanded.unwrap_or(text).split_whitespace().collect();
        if fields.len() != 5 {
            let hint = if fields.len() == 6 || fields.len() == 7 {
                " (seconds and year fields are not supported: write a 5-field crontab expression)"
            } else {
                ""
            };
            return Err(PolicyError::FieldCount {
                expr: expr.to_string(),
                found: fields.len(),
                hint: hint.to_string(),
            });
        }

        let field_error = |spec: &FieldSpec, value: &str, reason: String| PolicyError::Field {
            expr: expr.to_string(),
            field: spec.name,
            value: value.to_string(),
            reason,
        };
        let mut sets = Vec::with_capacity(5);
        for (spec, value) in FIELDS.iter().zip(&fields) {
            let set = expand_field(spec, value).map_err(|r| field_error(spec, value, r))?;
            sets.push(set);
        }
        let [minutes, hours, days, months, weekdays] = <[BTreeSet<u32>; 5]>::try_from(sets)
            .unwrap_or_else(|_| unreachable!("five fields were checked above"));

        let minutes = quartz_list(&MINUTE, &minutes);
        let hours = quartz_list(&HOUR, &hours);
        let days = quartz_list(&DAY_OF_MONTH, &days);
        let months = quartz_list(&MONTH, &months);
        let weekdays = quartz_weekdays(&weekdays);

        let unrestricted = |field: &str| field.starts_with('*') || field.starts_with('?');
        let day_alternatives = if unrestricted(fields[2]) || unrestricted(fields[4]) {
            vec![(days, weekdays)]
        } else {
            vec![(days, "*".to_string()), ("*".to_string(), weekdays)]
        };

        let mut crons = Vec::with_capacity(day_alternatives.len());
        for (days, weekdays) in day_alternatives {
            let quartz = format!("0 {minutes} {hours} {days} {months} {weekdays}");
            let parsed = cron::Schedule::from_str(&quartz).map_err(|e| PolicyError::Schedule {
                expr: expr.to_string(),
                reason: format!("internal translation `{quartz}` was rejected: {e}"),
            })?;
            crons.push(parsed);
        }

        let schedule = Schedule {
            expr: expr.to_string(),
            tz,
            crons,
        };
        // Crontab silently accepts dates that never come, such as 30 February;
        // a backup that never runs is worth refusing up front. Every valid
        // date and weekday combination recurs within 28 years, well inside
        // the `cron` crate's horizon of 2100.
        let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        if schedule.next_runs(epoch, 1).is_empty() {
            return Err(PolicyError::Schedule {
                expr: expr.to_string(),
                reason: "it never runs: no date matches its day-of-month and month".to_string(),
            });
        }
        Ok(schedule)
    }

    /// The next `n` run times strictly after `after`, in the schedule's zone.
    /// Fewer are returned only past the `cron` crate's last year, 2100.
    pub fn next_runs(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        let start = after.with_timezone(&self.tz);
        // The first n of each alternative contain the first n of their union.
        let mut runs: Vec<DateTime<Tz>> = self
            .crons
            .iter()
            .flat_map(|c| c.after(&start).take(n))
            .collect();
        runs.sort();
        runs.dedup();
        runs.truncate(n);
        runs
    }

    /// The next run strictly after `after`.
    pub fn next_run(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        self.next_runs(after, 1).into_iter().next()
    }

    /// The expression exactly as the operator wrote it.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone the expression is evaluated in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz.name())
    }
}

fn parse_time_zone(tz: &str) -> Result<Tz, PolicyError> {
    let unsupported = || PolicyError::TimeZone { tz: tz.to_string() };
    if !TIME_ZONES.contains(&tz) {
        return Err(unsupported());
    }
    Tz::from_str(tz).map_err(|_| unsupported())
}

/// `Ok(None)` when `text` is not a shorthand at all.
fn expand_shorthand(text: &str) -> Result<Option<&'static str>, String> {
    if !text.starts_with('@') {
        return Ok(None);
    }
    let fields = match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        "@reboot" => return Err("@reboot is not a time schedule".to_string()),
        _ => {
            return Err(
                "unknown shorthand: use @hourly, @daily, @weekly, @monthly or @yearly".to_string(),
            )
        }
    };
    Ok(Some(fields))
}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
    /// What the names are, for error messages.
    names_hint: &'static str,
    allows_any: bool,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
    allows_any: false,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
    allows_any: false,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
    allows_any: true,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("january", 1),
        ("feb", 2),
        ("february", 2),
        ("mar", 3),
        ("march", 3),
        ("apr", 4),
        ("april", 4),
        ("may", 5),
        ("jun", 6),
        ("june", 6),
        ("jul", 7),
        ("july", 7),
        ("aug", 8),
        ("august", 8),
        ("sep", 9),
        ("september", 9),
        ("oct", 10),
        ("october", 10),
        ("nov", 11),
        ("november", 11),
        ("dec", 12),
        ("december", 12),
    ],
    names_hint: "a month name (JAN-DEC)",
    allows_any: false,
};
/// Crontab numbering: 0 and 7 are Sunday.
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &[
        ("sun", 0),
        ("sunday", 0),
        ("mon", 1),
        ("monday", 1),
        ("tue", 2),
        ("tuesday", 2),
        ("wed", 3),
        ("wednesday", 3),
        ("thu", 4),
        ("thursday", 4),
        ("fri", 5),
        ("friday", 5),
        ("sat", 6),
        ("saturday", 6),
    ],
    names_hint: "a day name (SUN-SAT)",
    allows_any: true,
};

const FIELDS: [&FieldSpec; 5] = [&MINUTE, &HOUR, &DAY_OF_MONTH, &MONTH, &DAY_OF_WEEK];

/// The values a crontab field denotes, in the field's own numbering.
fn expand_field(spec: &FieldSpec, text: &str) -> Result<BTreeSet<u32>, String> {
    let mut set = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err("empty item in list".to_string());
        }
        let (base, step) = match item.split_once('/') {
            Some((base, step)) => (base, Some(parse_step(step)?)),
            None => (item, None),
        };
        let (low, high) = match base {
            "*" => (spec.min, spec.max),
            "?" if spec.allows_any => (spec.min, spec.max),
            "?" => return Err("`?` is only allowed in day-of-month and day-of-week".to_string()),
            _ => match base.split_once('-') {
                Some((low, high)) => {
                    let low = parse_value(spec, low)?;
                    let mut high = parse_value(spec, high)?;
                    // Sunday is 0 by name, but `FRI-SUN` clearly means 5-7.
                    if spec.name == DAY_OF_WEEK.name && high == 0 && low > 0 {
                        high = 7;
                    }
                    if low > high {
                        return Err(format!(
                            "range `{base}` runs backwards (wrap-around ranges are not supported)"
                        ));
                    }
                    (low, high)
                }
                // `a/n` runs from `a` to the end of the field.
                None if step.is_some() => (parse_value(spec, base)?, spec.max),
                None => {
                    let value = parse_value(spec, base)?;
                    (value, value)
                }
            },
        };
        set.extend((low..=high).step_by(step.unwrap_or(1) as usize));
    }
    Ok(set)
}

fn parse_step(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("step must be at least 1".to_string()),
        Ok(step) => Ok(step),
        Err(_) => Err(format!("step `{text}` is not a positive number")),
    }
}

fn parse_value(spec: &FieldSpec, text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("missing value in range".to_string());
    }
    let out_of_range = || format!("`{text}` is out of range {}-{}", spec.min, spec.max);
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let value = text.parse::<u32>().map_err(|_| out_of_range())?;
        if value < spec.min || value > spec.max {
            return Err(out_of_range());
        }
        return Ok(value);
    }
    let lower = text.to_ascii_lowercase();
    if let Some((_, value)) = spec.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*value);
    }
    if spec.names.is_empty() {
        Err(format!("`{text}` is not a number"))
    } else {
        Err(format!(
            "`{text}` is neither a number nor {}",
            spec.names_hint
        ))
    }
}

/// A `cron` field for a set already in `cron`'s numbering; `*` when complete,
/// so that the day fields keep their "unrestricted" meaning there.
fn quartz_list(spec: &FieldSpec, set: &BTreeSet<u32>) -> String {
    if set.len() as u32 == spec.max - spec.min + 1 {
        return "*".to_string();
    }
    join(set.iter().copied())
}

/// Crontab weekdays (0-7, 0 and 7 Sunday) to `cron`'s (1-7, 1 Sunday).
fn quartz_weekdays(set: &BTreeSet<u32>) -> String {
    let quartz: BTreeSet<u32> = set.iter().map(|d| d % 7 + 1).collect();
    if quartz.len() == 7 {
        return "*".to_string();
    }
    join(quartz.into_iter())
}

fn join(values: impl Iterator<Item = u32>) -> String {
    values.map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike, Weekday};

    fn utc(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn runs(expr: &str, tz: &str, after: &str, n: usize) -> Vec<String> {
        Schedule::parse(expr, tz)
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .next_runs(utc(after), n)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    /// Weekday sets as numbers from Monday, since `Weekday` is not `Ord`.
    fn days(list: &[Weekday]) -> BTreeSet<u32> {
        list.iter().map(|d| d.num_days_from_monday()).collect()
    }

    fn weekdays(expr: &str) -> BTreeSet<u32> {
        // Two weeks starting on a Monday (3 June 2024), in UTC.
        let end = utc("2024-06-17T00:00:00Z");
        Schedule::parse(expr, "UTC")
            .unwrap_or_else(|e| panic!("{expr}: {e}"))
            .next_runs(utc("2024-06-02T23:59:59Z"), 14)
            .iter()
            .filter(|t| t.with_timezone(&Utc) < end)
            .map(|t| t.weekday().num_days_from_monday())
            .collect()
    }

    fn error(expr: &str) -> String {
        match Schedule::parse(expr, "Asia/Jakarta") {
            Ok(s) => panic!("`{expr}` parsed as {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn daily_in_makassar_runs_at_0230_wita() {
        let s = Schedule::parse("30 2 * * *", "Asia/Makassar").unwrap();
        let next = s.next_runs(utc("2024-06-01T00:00:00Z"), 3);
        assert_eq!(next.len(), 3);
        for t in &next {
            assert_eq!((t.hour(), t.minute(), t.second()), (2, 30, 0));
            assert_eq!(t.timezone(), chrono_tz::Asia::Makassar);
            // 02:30 WITA (+08:00) is 18:30 UTC the previous day.
            let u = t.with_timezone(&Utc);
            assert_eq!((u.hour(), u.minute()), (18, 30));
            assert_eq!(u.date_naive().succ_opt().unwrap(), t.date_naive());
        }
        assert_eq!(
            runs("30 2 * * *", "Asia/Makassar", "2024-06-01T00:00:00Z", 2),
            ["2024-06-02T02:30:00+08:00", "2024-06-03T02:30:00+08:00"]
        );
        assert_eq!(s.expr(), "30 2 * * *");
        assert_eq!(s.to_string(), "30 2 * * * (Asia/Makassar)");
    }

    #[test]
    fn each_indonesian_zone_uses_its_own_offset() {
        let after = "2024-06-01T00:00:00Z";
        assert_eq!(
            runs("0 1 * * *", "Asia/Jakarta", after, 1),
            ["2024-06-02T01:00:00+07:00"]
        );
        assert_eq!(
            runs("0 1 * * *", "Asia/Makassar", after, 1),
            ["2024-06-02T01:00:00+08:00"]
        );
        assert_eq!(
            runs("0 1 * * *", "Asia/Jayapura", after, 1),
            ["2024-06-02T01:00:00+09:00"]
        );
        assert_eq!(
            runs("0 1 * * *", "UTC", after, 1),
            ["2024-06-01T01:00:00+00:00"]
        );
    }

    #[test]
    fn next_runs_are_strictly_after() {
        let s = Schedule::parse("30 2 * * *", "UTC").unwrap();
        let at = utc("2024-06-01T02:30:00Z");
        assert_eq!(
            s.next_run(at).unwrap().to_rfc3339(),
            "2024-06-02T02:30:00+00:00"
        );
        let just_before = at - chrono::Duration::milliseconds(1);
        assert_eq!(
            s.next_run(just_before).unwrap().to_rfc3339(),
            "2024-06-01T02:30:00+00:00"
        );
        assert!(s.next_runs(at, 0).is_empty());
    }

    #[test]
    fn sunday_is_both_0_and_7() {
        for expr in ["0 1 * * 0", "0 1 * * 7", "0 1 * * SUN", "0 1 * * sunday"] {
            assert_eq!(weekdays(expr), days(&[Weekday::Sun]), "{expr}");
            let next = runs(expr, "Asia/Jakarta", "2024-06-01T00:00:00Z", 2);
            assert_eq!(
                next,
                ["2024-06-02T01:00:00+07:00", "2024-06-09T01:00:00+07:00"],
                "{expr}"
            );
        }
    }

    #[test]
    fn weekday_forms() {
        use Weekday::*;
        let work_week = days(&[Mon, Tue, Wed, Thu, Fri]);
        let cases: &[(&str, BTreeSet<u32>)] = &[
            ("0 22 * * 1-5", work_week.clone()),
            ("0 22 * * MON-FRI", work_week.clone()),
            ("0 22 * * mon-fri", work_week.clone()),
            ("0 22 * * 1,2,3,4,5", work_week.clone()),
            ("0 22 * * 1-3,4,FRI", work_week),
            ("0 22 * * 6", days(&[Sat])),
            ("0 22 * * 6,0", days(&[Sat, Sun])),
            ("0 22 * * 6-7", days(&[Sat, Sun])),
            ("0 22 * * SAT-SUN", days(&[Sat, Sun])),
            ("0 22 * * 5-7", days(&[Fri, Sat, Sun])),
            ("0 22 * * FRI-SUN", days(&[Fri, Sat, Sun])),
            ("0 22 * * 0-7", days(&[Mon, Tue, Wed, Thu, Fri, Sat, Sun])),
            ("0 22 * * *", days(&[Mon, Tue, Wed, Thu, Fri, Sat, Sun])),
            ("0 22 * * ?", days(&[Mon, Tue, Wed, Thu, Fri, Sat, Sun])),
            ("0 22 * * */2", days(&[Sun, Tue, Thu, Sat])),
            ("0 22 * * 1-5/2", days(&[Mon, Wed, Fri])),
            ("0 22 * * MON-FRI/2", days(&[Mon, Wed, Fri])),
            ("0 22 * * 3/2", days(&[Wed, Fri, Sun])),
        ];
        for (expr, expected) in cases {
            assert_eq!(&weekdays(expr), expected, "{expr}");
        }
    }

    #[test]
    fn weeknights_at_2200_wib() {
        let next = runs("0 22 * * 1-5", "Asia/Jakarta", "2024-06-07T16:00:00Z", 3);
        // Friday 7 June 23:00 WIB is past 22:00: next are Mon, Tue, Wed.
        assert_eq!(
            next,
            [
                "2024-06-10T22:00:00+07:00",
                "2024-06-11T22:00:00+07:00",
                "2024-06-12T22:00:00+07:00",
            ]
        );
    }

    #[test]
    fn minute_hour_month_forms() {
        assert_eq!(
            runs("*/20 3 * * *", "UTC", "2024-06-01T00:00:00Z", 4),
            [
                "2024-06-01T03:00:00+00:00",
                "2024-06-01T03:20:00+00:00",
                "2024-06-01T03:40:00+00:00",
                "2024-06-02T03:00:00+00:00",
            ]
        );
        assert_eq!(
            runs("5/30 1-2 * * *", "UTC", "2024-06-01T00:00:00Z", 5),
            [
                "2024-06-01T01:05:00+00:00",
                "2024-06-01T01:35:00+00:00",
                "2024-06-01T02:05:00+00:00",
                "2024-06-01T02:35:00+00:00",
                "2024-06-02T01:05:00+00:00",
            ]
        );
        assert_eq!(
            runs("0 0 1 JAN,jul *", "UTC", "2024-06-01T00:00:00Z", 3),
            [
                "2024-07-01T00:00:00+00:00",
                "2025-01-01T00:00:00+00:00",
                "2025-07-01T00:00:00+00:00",
            ]
        );
    }

    #[test]
    fn both_day_fields_restricted_means_either_matches() {
        // 1st and 15th of the month, and every Monday, as in Vixie cron.
        let next = runs("0 3 1,15 * MON", "UTC", "2024-06-01T00:00:00Z", 6);
        assert_eq!(
            next,
            [
                "2024-06-01T03:00:00+00:00", // Sat, 1st
                "2024-06-03T03:00:00+00:00", // Mon
                "2024-06-10T03:00:00+00:00", // Mon
                "2024-06-15T03:00:00+00:00", // Sat, 15th
                "2024-06-17T03:00:00+00:00", // Mon
                "2024-06-24T03:00:00+00:00", // Mon
            ]
        );
        // A day field starting with `*` leaves the other alone in charge.
        assert_eq!(
            runs("0 3 * * MON", "UTC", "2024-06-01T00:00:00Z", 1),
            ["2024-06-03T03:00:00+00:00"]
        );
        assert_eq!(
            runs("0 3 1 * ?", "UTC", "2024-06-01T00:00:00Z", 1),
            ["2024-06-01T03:00:00+00:00"]
        );
    }

    #[test]
    fn shorthands() {
        let after = "2024-06-01T10:30:00Z";
        assert_eq!(
            runs("@hourly", "UTC", after, 1),
            ["2024-06-01T11:00:00+00:00"]
        );
        assert_eq!(
            runs("@daily", "UTC", after, 1),
            ["2024-06-02T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@midnight", "UTC", after, 1),
            ["2024-06-02T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@weekly", "UTC", after, 1),
            ["2024-06-02T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@monthly", "UTC", after, 1),
            ["2024-07-01T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@yearly", "UTC", after, 1),
            ["2025-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            runs("@annually", "UTC", after, 1),
            ["2025-01-01T00:00:00+00:00"]
        );
        assert!(error("@reboot").contains("not a time schedule"));
        assert!(error("@often").contains("unknown shorthand"));
    }

    #[test]
    fn leap_day_runs_every_four_years() {
        assert_eq!(
            runs("0 0 29 2 *", "Asia/Jayapura", "2024-03-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00+09:00", "2032-02-29T00:00:00+09:00"]
        );
    }

    #[test]
    fn extra_whitespace_is_tolerated() {
        assert_eq!(
            runs("  30\t2  *  * * ", "UTC", "2024-06-01T00:00:00Z", 1),
            ["2024-06-01T02:30:00+00:00"]
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["expected 5 fields", "found 0"]),
            ("30 2 * *", &["expected 5 fields", "found 4"]),
            ("0 30 2 * * ?", &["found 6", "seconds and year"]),
            ("60 2 * * *", &["minute field `60`", "out of range 0-59"]),
            ("30 24 * * *", &["hour field `24`", "out of range 0-23"]),
            (
                "30 2 0 * *",
                &["day-of-month field `0`", "out of range 1-31"],
            ),
            (
                "30 2 32 * *",
                &["day-of-month field `32`", "out of range 1-31"],
            ),
            ("30 2 * 13 *", &["month field `13`", "out of range 1-12"]),
            ("30 2 * * 8", &["day-of-week field `8`", "out of range 0-7"]),
            ("30 2 * * FRY", &["day-of-week field `FRY`", "day name"]),
            ("30 2 * FOO *", &["month field `FOO`", "month name"]),
            ("x 2 * * *", &["minute field `x`", "not a number"]),
            ("30 2 * * 5-1", &["day-of-week field `5-1`", "backwards"]),
            ("30 2 * * */0", &["day-of-week field `*/0`", "at least 1"]),
            ("*/x 2 * * *", &["minute field `*/x`", "step `x`"]),
            ("1,,2 2 * * *", &["minute field `1,,2`", "empty item"]),
            ("30 ? * * *", &["hour field `?`", "only allowed"]),
            ("30 2 -1 * *", &["day-of-month field `-1`", "missing value"]),
            ("0 0 L * *", &["day-of-month field `L`", "not a number"]),
            ("0 0 30 2 *", &["never runs"]),
            ("0 0 31 4,6,9,11 *", &["never runs"]),
            (
                "30 2 * * 99999999999",
                &["day-of-week field", "out of range 0-7"],
            ),
        ];
        for (expr, needles) in cases {
            let message = error(expr);
            assert!(
                message.contains(&format!("`{expr}`")),
                "{expr}: message does not quote the expression: {message}"
            );
            for needle in *needles {
                assert!(message.contains(needle), "{expr}: {message}");
            }
        }
    }

    #[test]
    fn only_indonesian_zones_and_utc() {
        for tz in TIME_ZONES {
            let s = Schedule::parse("0 1 * * *", tz).unwrap();
            assert_eq!(s.timezone().name(), tz);
        }
        for tz in ["Europe/Berlin", "WIB", "asia/jakarta", ""] {
            let err = Schedule::parse("0 1 * * *", tz).unwrap_err();
            assert_eq!(err, PolicyError::TimeZone { tz: tz.to_string() });
            let message = err.to_string();
            assert!(message.contains("Asia/Makassar"), "{message}");
        }
    }
}
