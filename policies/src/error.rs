//! Errors raised while reading operator-written policies.
//!
//! Every message names the offending text so that an operator reading a log
//! line, not the code, can fix the configuration.

use thiserror::Error;

/// A policy that cannot be used as written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// A retention policy that keeps nothing: running `forget` with it would
    /// delete every snapshot, so callers must refuse it.
    #[error(
        "retention policy is empty: set at least one of last, hourly, daily, weekly, monthly, yearly"
    )]
    EmptyRetention,

    /// The expression does not have the five crontab fields.
    #[error("schedule `{expr}`: expected 5 fields (minute hour day-of-month month day-of-week), found {found}{hint}")]
    FieldCount {
        expr: String,
        found: usize,
        /// Extra guidance, e.g. for Quartz-style expressions with seconds.
        hint: String,
    },

    /// One field of the expression is malformed or out of range.
    #[error("schedule `{expr}`: {field} field `{value}`: {reason}")]
    Field {
        expr: String,
        /// `minute`, `hour`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        value: String,
        reason: String,
    },

    /// The expression as a whole is unusable (unknown `@` shorthand, a date
    /// that never occurs such as 31 February, ...).
    #[error("schedule `{expr}`: {reason}")]
    Schedule { expr: String, reason: String },

    /// The time zone is not one that cadang schedules in.
    #[error("time zone `{tz}` is not supported: use Asia/Jakarta (WIB), Asia/Makassar (WITA), Asia/Jayapura (WIT) or UTC")]
    TimeZone { tz: String },
}
