//! `[anomaly]`: defaults, PD and source layers, and located errors.

use super::*;

#[test]
fn anomaly_settings_stack_from_defaults_to_pd_to_source() {
    let regency = format!(
        "{REGENCY}[defaults.all.anomaly]\nmargin = 6\nentropy_share = \"3%\"\nweekday_rhythm = false\n"
    );
    let custom = format!(
        "{}\n[[hosts.sources]]\nname = \"arsip\"\npaths = [\"/srv/arsip\"]\n[hosts.sources.anomaly]\nslow_share = \"10%\"\nmin_files = 25\n",
        pd("CUSTOM", "h2", "[anomaly]\nmargin = \"8.5\"\nhistory = 14\n")
    );
    let set = valid(&[
        ("regency.toml", &regency),
        ("pd/plain.toml", &pd("PLAIN", "h1", "")),
        ("pd/custom.toml", &custom),
    ]);
    let plain = &set.pds["PLAIN"].anomaly;
    assert_eq!(plain.margin, Some(6.0));
    assert_eq!(plain.entropy_share, Some(0.03));
    assert_eq!(plain.weekday_rhythm, Some(false));
    assert_eq!(
        plain.history, None,
        "unset keys stay unset (built-in value)"
    );
    let custom = &set.pds["CUSTOM"];
    assert_eq!(custom.anomaly.margin, Some(8.5));
    assert_eq!(custom.anomaly.history, Some(14));
    assert_eq!(custom.anomaly.entropy_share, Some(0.03));
    let sources = &custom.hosts[0].sources;
    assert_eq!(
        sources[0].anomaly, custom.anomaly,
        "a source without [anomaly] takes the PD's"
    );
    assert_eq!(sources[1].anomaly.slow_share, Some(0.1));
    assert_eq!(sources[1].anomaly.min_files, Some(25));
    assert_eq!(sources[1].anomaly.margin, Some(8.5));
}

#[test]
fn bad_anomaly_values_are_reported_where_they_are_written() {
    let text = pd(
        "BAD",
        "h",
        "[anomaly]\nentropy_share = \"2\"\nmargin = 0\nmarjin = 5\nslow_nights = 1\n",
    );
    let diags = load(&[("regency.toml", REGENCY), ("pd/bad.toml", &text)]).unwrap_err();
    let found: Vec<(usize, &str)> = diags.iter().map(|d| (d.line, d.message.as_str())).collect();
    let at = |line: usize, part: &str| {
        assert!(
            found.iter().any(|(l, m)| *l == line && m.contains(part)),
            "no error with {part:?} on line {line}: {found:?}"
        )
    };
    at(5, "entropy_share");
    at(6, "margin");
    at(7, "marjin");
    at(8, "slow_nights");
    assert_eq!(diags.len(), 4, "{}", render(&diags));
}
