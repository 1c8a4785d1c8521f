//! `[drill]`: when the restore drill of a PD runs, how fast it must be
//! (RTO), which snapshot it restores, on which runner, and how the
//! restored data is checked.

use std::time::Duration;

use crate::model::{DrillCheck, DrillPick};
use crate::reader::{Ctx, Located, Table};
use crate::schedule::Schedule;
use crate::settings::{duration, schedule, sub_table, Env};

pub(crate) const DRILL_KEYS: [&str; 6] = ["enabled", "schedule", "rto", "pick", "runner", "check"];

#[derive(Debug, Clone, Default)]
pub(crate) struct DrillSettings {
    /// Set when any `[drill]` table was written at this layer.
    pub present: bool,
    pub enabled: Option<bool>,
    pub schedule: Option<Located<Schedule>>,
    pub rto: Option<Duration>,
    pub pick: Option<DrillPick>,
    pub runner: Option<String>,
    pub check: Option<Located<DrillCheck>>,
}

impl DrillSettings {
    pub fn over(self, lower: &DrillSettings) -> DrillSettings {
        DrillSettings {
            present: self.present || lower.present,
            enabled: self.enabled.or(lower.enabled),
            schedule: self.schedule.or_else(|| lower.schedule.clone()),
            rto: self.rto.or(lower.rto),
            pick: self.pick.or(lower.pick),
            runner: self.runner.or_else(|| lower.runner.clone()),
            check: self.check.or_else(|| lower.check.clone()),
        }
    }
}

pub(crate) fn parse(cx: &mut Ctx, d: &Table, env: &Env) -> DrillSettings {
    let pick = d.string(cx, "pick").and_then(|p| match p.value.as_str() {
        "latest" => Some(DrillPick::Latest),
        "random" => Some(DrillPick::RandomWithinRetention),
        other => {
            cx.error_hint(
                &p.span,
                format!("unknown drill pick `{other}`"),
                "use \"latest\" (the newest snapshot) or \"random\" (any snapshot still kept by retention)",
            );
            None
        }
    });
    DrillSettings {
        present: true,
        enabled: d.boolean(cx, "enabled"),
        schedule: schedule(cx, d, "schedule", env.zone),
        rto: duration(cx, d, "rto"),
        pick,
        runner: d.string(cx, "runner").map(|r| r.value),
        check: drill_check(cx, d),
    }
}

/// `check = { command = "..." }` or `check = { postgres = { stream, query, min } }`.
fn drill_check(cx: &mut Ctx, d: &Table) -> Option<Located<DrillCheck>> {
    let c = sub_table(cx, d, "check", &["command", "postgres"])?;
    let both_or_neither = c.value("command").is_some() == c.value("postgres").is_some();
    if both_or_neither {
        cx.error_hint(
            &c.span,
            "[drill.check] needs exactly one of `command` or `postgres`",
            "e.g. check = { command = \"pg_restore --list {file}\" } or check = { postgres = { stream = \"siak\", query = \"SELECT count(*) FROM penduduk\", min = 1 } }",
        );
        return None;
    }
    if let Some(command) = c.string(cx, "command") {
        return Some(Located::new(
            DrillCheck::Command {
                command: command.value,
            },
            c.span.clone(),
        ));
    }
    let pg = sub_table(cx, &c, "postgres", &["stream", "query", "min"])?;
    let stream = pg.required_string(cx, "stream", "the dump stream to restore");
    let query = pg.required_string(cx, "query", "a query returning one number");
    let min = pg.integer(cx, "min").map_or(1, |m| m.value);
    let (stream, query) = (stream?, query?);
    // Located at the stream name: the loader checks it against the PD's
    // sources.
    Some(Located::new(
        DrillCheck::Postgres {
            stream: stream.value,
            query: query.value,
            min,
        },
        stream.span,
    ))
}
