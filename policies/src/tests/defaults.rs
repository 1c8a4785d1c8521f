use std::time::Duration;

use super::*;
use crate::model::Window;
use crate::retention::KeepPolicy;

/// REGENCY plus defaults for the `pelayanan` group.
fn regency_with_group_defaults() -> String {
    format!(
        r#"{REGENCY}
[defaults.all.replication]
windows = ["22:00-05:00"]
bandwidth = "20MiB/s"
[defaults.pelayanan]
rpo = "13h"
object_lock_days = 60
[defaults.pelayanan.retention]
daily = 14
monthly = 12
[defaults.pelayanan.drill]
schedule = "0 9 1 * *"
rto = "4h"
"#
    )
}

#[test]
fn group_defaults_apply_and_a_pd_overrides_them() {
    let regency = regency_with_group_defaults();
    let plain = pd("PLAIN", "h1", "");
    let custom = pd(
        "CUSTOM",
        "h2",
        "rpo = \"2h\"\nschedule = \"0 */2 * * *\"\n[retention]\nlast = 3\n[replication]\nbandwidth = \"5MiB/s\"\n[drill]\nenabled = false\n",
    );
    let set = valid(&[
        ("regency.toml", &regency),
        ("pd/plain.toml", &plain),
        ("pd/custom.toml", &custom),
    ]);

    let p = &set.pds["PLAIN"];
    assert_eq!(
        p.rpo,
        Duration::from_secs(13 * 3600),
        "group default over [defaults.all]"
    );
    assert_eq!(p.object_lock_days, 60);
    assert_eq!(
        p.retention,
        KeepPolicy {
            daily: 14,
            monthly: 12,
            ..KeepPolicy::default()
        }
    );
    assert_eq!(
        p.hosts[0].sources[0].schedule.expr(),
        "0 1 * * *",
        "[defaults.all] schedule"
    );
    assert_eq!(p.replication.bandwidth_limit, Some(20 * 1_048_576));
    assert!(p.drill.is_some());

    let c = &set.pds["CUSTOM"];
    assert_eq!(c.rpo, Duration::from_secs(2 * 3600));
    assert_eq!(c.hosts[0].sources[0].schedule.expr(), "0 */2 * * *");
    // A retention table replaces the default one as a whole ...
    assert_eq!(
        c.retention,
        KeepPolicy {
            last: 3,
            ..KeepPolicy::default()
        }
    );
    // ... while replication and drill settings override field by field.
    assert_eq!(c.replication.bandwidth_limit, Some(5 * 1_048_576));
    assert_eq!(
        c.replication.windows,
        [Window {
            start_minute: 22 * 60,
            end_minute: 5 * 60
        }]
    );
    assert!(
        c.drill.is_none(),
        "enabled = false turns the group's drill off"
    );
    assert_eq!(c.object_lock_days, 60, "unset in the PD: the group's value");
}

#[test]
fn built_in_values_fill_what_nobody_set() {
    let set = valid(&[("regency.toml", REGENCY), ("pd/a.toml", &pd("A", "h", ""))]);
    let a = &set.pds["A"];
    assert_eq!(a.rpo, Duration::from_secs(26 * 3600));
    assert_eq!(a.verification.read_share_percent, 5);
    assert!(a.replication.windows.is_empty());
    assert_eq!(a.replication.bandwidth_limit, None);
    assert_eq!(a.object_lock_days, 0);
    assert!(a.drill.is_none());
}

#[test]
fn a_required_setting_nobody_gave_is_reported_once_at_the_pd() {
    let regency = REGENCY.replace("dr_store = \"drc\"\n", "");
    let diags = load(&[("regency.toml", &regency), ("pd/a.toml", &pd("A", "h", ""))]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!(
        (diags[0].file.as_str(), diags[0].line, diags[0].column),
        ("pd/a.toml", 1, 1)
    );
    assert!(diags[0].message.contains("no `dr_store`"), "{}", diags[0]);
    assert!(diags[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("[defaults.pelayanan]"));
}

#[test]
fn a_bad_default_is_reported_once_in_the_regency_file() {
    let regency = REGENCY.replace("daily = 7", "daily = \"seven\"");
    let a = pd("A", "h1", "");
    let b = pd("B", "h2", "");
    let diags = load(&[
        ("regency.toml", &regency),
        ("pd/a.toml", &a),
        ("pd/b.toml", &b),
    ])
    .unwrap_err();
    // The bad value itself, and (since that left the table empty) the
    // empty-retention error: both in regency.toml, nothing per PD.
    assert!(
        diags.iter().all(|d| d.file == "regency.toml"),
        "{}",
        render(&diags)
    );
    let at: Vec<(usize, usize)> = diags.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(12, 1), (13, 9)], "{}", render(&diags));
    assert!(
        diags[0].message.contains("retention policy is empty"),
        "{}",
        diags[0]
    );
    assert!(
        diags[1].message.contains("must be a whole number"),
        "{}",
        diags[1]
    );
}
