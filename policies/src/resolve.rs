//! One PD's settings stacked over its group's defaults, `[defaults.all]`
//! and the built-in values, into the [`PdPolicy`] the controller runs.
//!
//! A field nobody set and that has no sensible built-in value (when to
//! back up, what to keep, where to) is an error at the top of the PD file:
//! guessing a schedule or a store for a government agency's data is not
//! ours to do.

use std::time::Duration;

use crate::diagnostic::{Diagnostic, SourceFile, WithHint};
use crate::model::{
    DataGroup, DrillPick, DrillPolicy, HostPolicy, PdPolicy, Replication, SourcePolicy,
    Verification,
};
use crate::pd::PdFile;
use crate::regency::RegencyFile;
use crate::settings::Settings;

/// Built-in values, below `[defaults.all]`.
const DEFAULT_RPO: Duration = Duration::from_secs(26 * 3600);
const DEFAULT_READ_SHARE: u8 = 5;

/// The resolved PD, or `None` when something it needs is missing or was
/// invalid (every such problem is in `diags`).
pub(crate) fn resolve(
    file: &SourceFile,
    pd: PdFile,
    regency: &RegencyFile,
    diags: &mut Vec<Diagnostic>,
) -> Option<PdPolicy> {
    let settings = stack(&pd, regency);
    let mut missing = Missing {
        file,
        group: pd.group,
        settings: &settings,
        diags,
        any: false,
    };
    let retention = missing.need(
        settings.retention.as_ref().map(|r| r.value),
        "retention",
        "`[retention]`, e.g. daily = 7",
    );
    let onsite_store = missing.need(
        settings.onsite_store.as_ref().map(|s| s.value.clone()),
        "onsite_store",
        "`onsite_store = \"...\"`",
    );
    let dr_store = missing.need(
        settings.dr_store.as_ref().map(|s| s.value.clone()),
        "dr_store",
        "`dr_store = \"...\"`",
    );
    let verification_schedule = missing.need(
        settings
            .verification_schedule
            .as_ref()
            .map(|s| s.value.clone()),
        "verification.schedule",
        "`[verification] schedule = \"0 4 * * 0\"`",
    );
    let retention_schedule = missing.need(
        settings
            .retention_schedule
            .as_ref()
            .map(|s| s.value.clone()),
        "retention_schedule",
        "`retention_schedule = \"0 6 * * *\"`",
    );
    let hosts = hosts(&mut missing, &pd, &settings);
    let drill = drill(&mut missing, &settings);
    if missing.any {
        return None;
    }
    Some(PdPolicy {
        code: pd.code?.value,
        name: pd.name?,
        group: pd.group?,
        wali_data: pd.wali_data?,
        hosts,
        retention: retention?,
        onsite_store: onsite_store?,
        dr_store: dr_store?,
        rpo: settings.rpo.unwrap_or(DEFAULT_RPO),
        replication: Replication {
            windows: settings.windows.clone().unwrap_or_default(),
            bandwidth_limit: settings.bandwidth,
            delay: settings.delay.unwrap_or(Duration::ZERO),
        },
        object_lock_days: settings.object_lock_days.unwrap_or(0),
        verification: Verification {
            schedule: verification_schedule?,
            read_share_percent: settings.read_share.unwrap_or(DEFAULT_READ_SHARE),
        },
        retention_schedule: retention_schedule?,
        drill: drill?,
        anomaly: settings.anomaly.clone(),
    })
}

/// PD file over `[defaults.GROUP]` over `[defaults.all]`.
fn stack(pd: &PdFile, regency: &RegencyFile) -> Settings {
    let all = regency.defaults.get(&None).cloned().unwrap_or_default();
    let group = pd
        .group
        .and_then(|g| regency.defaults.get(&Some(g)))
        .cloned()
        .unwrap_or_default();
    pd.settings.clone().over(&group.over(&all))
}

/// Reports required settings no layer gave.
struct Missing<'a> {
    file: &'a SourceFile,
    group: Option<DataGroup>,
    settings: &'a Settings,
    diags: &'a mut Vec<Diagnostic>,
    /// Set when anything was missing.
    any: bool,
}

impl Missing<'_> {
    /// `value`, noting when it is absent; an absent value is reported
    /// here unless it was written and invalid (then it was reported where
    /// it was written).
    fn need<T>(&mut self, value: Option<T>, key: &str, example: &str) -> Option<T> {
        if value.is_none() {
            self.any = true;
            if !self.settings.written.contains(key) {
                self.report(key, example);
            }
        }
        value
    }

    fn report(&mut self, key: &str, example: &str) {
        let group = self.group.map_or("GROUP", DataGroup::key);
        let d = self
            .file
            .at_offset(0, format!("this PD has no `{key}`, and regency.toml gives no default for it"))
            .with_hint(format!("set {example} in this file, or in [defaults.{group}] or [defaults.all] of regency.toml"));
        self.diags.push(d);
    }
}

fn hosts(missing: &mut Missing, pd: &PdFile, settings: &Settings) -> Vec<HostPolicy> {
    let pd_schedule = settings.schedule.as_ref().map(|s| s.value.clone());
    let mut hosts = Vec::with_capacity(pd.hosts.len());
    for h in &pd.hosts {
        let mut sources = Vec::with_capacity(h.sources.len());
        for s in &h.sources {
            let schedule = s
                .schedule
                .as_ref()
                .map(|l| l.value.clone())
                .or_else(|| pd_schedule.clone());
            let Some(schedule) = schedule else {
                missing.any = true;
                if !settings.written.contains("schedule") {
                    let d = missing
                        .file
                        .at(&s.span, format!("source `{}` has no backup schedule", s.name))
                        .with_hint("set `schedule = \"0 2 * * *\"` on the source, at the top of this file, or in [defaults.GROUP] of regency.toml");
                    missing.diags.push(d);
                }
                continue;
            };
            sources.push(SourcePolicy {
                name: s.name.clone(),
                kind: s.kind.clone(),
                schedule,
                excludes: s.excludes.clone(),
                tags: s.tags.clone(),
                anomaly: s.anomaly.over(&settings.anomaly),
            });
        }
        hosts.push(HostPolicy {
            name: h.name.value.clone(),
            sources,
        });
    }
    hosts
}

/// `Some(None)`: no drill; `None`: a drill is configured but incomplete.
fn drill(missing: &mut Missing, settings: &Settings) -> Option<Option<DrillPolicy>> {
    let d = &settings.drill;
    if !d.present || d.enabled == Some(false) {
        return Some(None);
    }
    let schedule = missing.need(
        d.schedule.as_ref().map(|s| s.value.clone()),
        "drill.schedule",
        "`[drill] schedule = \"0 9 1 * *\"`",
    );
    let rto = missing.need(d.rto, "drill.rto", "`[drill] rto = \"4h\"`");
    Some(Some(DrillPolicy {
        schedule: schedule?,
        rto: rto?,
        pick: d.pick.unwrap_or(DrillPick::Latest),
        check: d.check.as_ref().map(|c| c.value.clone()),
        runner: d.runner.clone(),
    }))
}
