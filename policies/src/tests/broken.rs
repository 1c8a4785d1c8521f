//! One deliberately broken policy set holding every kind of error: all of
//! them must come back from ONE load, each at its exact line:column.

use super::*;

const REGENCY_BROKEN: &str = r#"name = "Kabupaten Rusak"
zone = "Asia/Makasar"
[stores.pusat-data]
site = "onsite"
[stores.drc]
site = "dr"
access_key = "AKIAEXAMPLE"
[defaults.all]
onsite_store = "pusat-data"
dr_store = "drc"
retention_schedule = "0 6 * * *"
[defaults.all.retention]
daily = 7
[defaults.all.verification]
schedule = "0 4 * * 0"
[defaults.kesehatn]
rpo = "1d"
"#;

const PD_A: &str = r#"code = "DINKES"
name = "Dinas Kesehatan"
group = "kesehatan"
schedule = "0 25 * * *"
retension = 3
onsite_store = "drc"
dr_store = "pusat-dat"
rpo = "26 hours"
[replication]
windows = ["22:00-5:00"]
bandwidth = "20MiBps"
[wali_data]
name = "Nurhayati"
nip = "198111072008132001"
[[hosts]]
name = "fs-dinkes"
[[hosts.sources]]
name = "berkas"
paths = ["/srv/samba"]
[[hosts.sources]]
name = "berkas"
paths = ["/srv/lain"]
[[hosts.sources]]
name = "samba-lagi"
paths = ["/srv/samba/"]
"#;

const PD_B: &str = r#"code = "DINKES"
name = "Dinas Kesehatan Kedua"
group = "kesehatn"
schedule = "0 2 * * *"
[[hosts]]
name = "fs-dinkes"
[[hosts.sources]]
name = "x"
paths = ["/srv/x"]
"#;

const PD_C: &str = r#"code = "BPKAD"
name = "BPKAD"
group = "keuangan"
schedule = "0 2 * * *"
[wali_data]
name = "Siti"
nip = "1979082420050220"
[[hosts]]
name = "db
"#;

#[test]
fn every_error_is_reported_in_one_run_with_its_location() {
    let diags = load(&[
        ("regency.toml", REGENCY_BROKEN),
        ("pd/a.toml", PD_A),
        ("pd/b.toml", PD_B),
        ("pd/c.toml", PD_C),
    ])
    .unwrap_err();
    let got: Vec<(&str, usize, usize, &str)> = diags
        .iter()
        .map(|d| (d.file.as_str(), d.line, d.column, d.message.as_str()))
        .collect();
    let expected: &[(&str, usize, usize, &str)] = &[
        ("regency.toml", 2, 8, "unknown time zone `Asia/Makasar`"),
        ("regency.toml", 7, 1, "`access_key` looks like a credential"),
        (
            "regency.toml",
            16,
            11,
            "unknown data group `kesehatn` in [defaults]",
        ),
        (
            "pd/a.toml",
            4,
            15,
            "bad `schedule` in this PD file: schedule `0 25 * * *`: hour field",
        ),
        ("pd/a.toml", 5, 1, "unknown key `retension`"),
        (
            "pd/a.toml",
            6,
            16,
            "`onsite_store` names store `drc`, which regency.toml puts at the other site",
        ),
        (
            "pd/a.toml",
            7,
            12,
            "unknown store `pusat-dat` in `dr_store`",
        ),
        ("pd/a.toml", 8, 7, "`26 hours`"),
        ("pd/a.toml", 10, 12, "`22:00-5:00`: end"),
        ("pd/a.toml", 11, 13, "`20MiBps`: unknown unit"),
        (
            "pd/a.toml",
            14,
            20,
            "malformed NIP of the Wali Data: NIP `198111072008132001`: appointment",
        ),
        ("pd/a.toml", 20, 1, "duplicate source `berkas` on this host"),
        (
            "pd/a.toml",
            23,
            1,
            "duplicate source: path `/srv/samba` is already backed up by source `berkas`",
        ),
        ("pd/b.toml", 1, 1, "this PD has no Wali Data"),
        ("pd/b.toml", 1, 8, "duplicate PD code `DINKES`"),
        ("pd/b.toml", 3, 9, "unknown data group `kesehatn`"),
        (
            "pd/b.toml",
            6,
            8,
            "host `fs-dinkes` is already a host of PD `DINKES`",
        ),
        ("pd/c.toml", 9, 11, "TOML syntax"),
    ];
    let shown = render(&diags);
    assert_eq!(got.len(), expected.len(), "{shown}");
    for (g, e) in got.iter().zip(expected) {
        assert_eq!((g.0, g.1, g.2), (e.0, e.1, e.2), "{shown}");
        assert!(
            g.3.contains(e.3),
            "`{}` should contain `{}`\n{shown}",
            g.3,
            e.3
        );
    }
}

#[test]
fn hints_suggest_the_closest_name() {
    let diags = load(&[("regency.toml", REGENCY_BROKEN), ("pd/a.toml", PD_A)]).unwrap_err();
    let hint = |needle: &str| {
        diags
            .iter()
            .find(|d| d.message.contains(needle))
            .and_then(|d| d.hint.clone())
            .unwrap_or_else(|| panic!("no diagnostic with `{needle}`:\n{}", render(&diags)))
    };
    assert_eq!(hint("unknown time zone"), "did you mean `Asia/Makassar`?");
    assert_eq!(
        hint("unknown data group `kesehatn`"),
        "did you mean `kesehatan`?"
    );
    assert_eq!(hint("unknown key `retension`"), "did you mean `retention`?");
    // `pusat-data` is closer, but it is an on-site store: the hint lists
    // the DR stores instead of suggesting a store that would be refused.
    assert_eq!(
        hint("unknown store `pusat-dat`"),
        "stores with site = \"dr\" in regency.toml: drc"
    );
    assert!(hint("at the other site").contains("pusat-data"));
    assert!(hint("looks like a credential").contains("controller's config"));
}

#[test]
fn rendered_diagnostic_shows_the_line_and_a_caret() {
    let diags = load(&[("regency.toml", REGENCY_BROKEN), ("pd/a.toml", PD_A)]).unwrap_err();
    let nip = diags.iter().find(|d| d.message.contains("NIP")).unwrap();
    let text = nip.to_string();
    // The caret sits under the appointment month `13` (digits 13-14).
    let expected_tail = "14 | nip = \"198111072008132001\"\n   |                    ^\n";
    assert!(
        text.starts_with("pd/a.toml:14:20: error: malformed NIP"),
        "{text}"
    );
    assert!(text.contains(expected_tail), "{text}");
    assert!(text.contains("  = hint: a NIP is 18 digits"), "{text}");
}

#[test]
fn missing_wali_data_and_malformed_nips() {
    for (nip, part) in [
        ("19850312201001100", "17 digits"),
        ("198502302010011004", "birth date"),
        ("198503122010011000", "serial"),
        ("198503122010013004", "sex digit"),
        ("198503121980011004", "before the birth year"),
    ] {
        let file = pd("A", "h", "").replace("198503122010011004", nip);
        let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &file)]).unwrap_err();
        assert_eq!(diags.len(), 1, "{}", render(&diags));
        assert_eq!(diags[0].line, 7, "{nip}");
        assert!(diags[0].message.contains(part), "{nip}: {}", diags[0]);
    }
}

#[test]
fn credentials_are_refused_anywhere() {
    let file = pd("A", "h", "[replication]\nsecret_key = \"x\"\n");
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &file)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!((diags[0].line, diags[0].column), (5, 1));
    assert!(diags[0].message.contains("credential"));
}

#[test]
fn drill_check_must_name_a_stream_of_the_pd() {
    let extra = "[drill]\nschedule = \"0 9 1 * *\"\nrto = \"4h\"\ncheck = { postgres = { stream = \"siak.dmp\", query = \"SELECT 1\" } }\n";
    let file = pd("A", "h", extra).replace(
        "paths = [\"/srv/berkas\"]",
        "command = \"pg_dump -Fc siak\"\nstream = \"siak.dump\"",
    );
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &file)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!((diags[0].line, diags[0].column), (7, 33));
    assert_eq!(diags[0].hint.as_deref(), Some("did you mean `siak.dump`?"));
}

#[test]
fn bad_cron_in_a_source_and_missing_parts() {
    let file = pd("A", "h", "").replace(
        "name = \"berkas\"\n",
        "name = \"berkas\"\nschedule = \"0 2 * *\"\n",
    );
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &file)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!((diags[0].line, diags[0].column), (12, 13));
    assert!(
        diags[0].message.contains("expected 5 fields"),
        "{}",
        diags[0]
    );
}

#[test]
fn a_pd_without_hosts_or_sources_is_refused() {
    let no_hosts = pd("A", "h", "hosts = []");
    let no_hosts = no_hosts[..no_hosts.find("[[hosts]]").unwrap()].to_string();
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &no_hosts)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert!(diags[0].message.contains("no hosts"));
    let no_sources = pd("A", "h", "");
    let no_sources = no_sources[..no_sources.find("[[hosts.sources]]").unwrap()].to_string();
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &no_sources)]).unwrap_err();
    assert_eq!(diags.len(), 1, "{}", render(&diags));
    assert_eq!((diags[0].line, diags[0].column), (8, 1));
    assert!(diags[0].message.contains("no sources"));
}

#[test]
fn unreadable_and_missing_files_are_diagnostics_too() {
    let dir = std::env::temp_dir().join(format!("cadang-policy-missing-{}", std::process::id()));
    let diags = crate::load_dir(&dir).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert!(
        diags[0].message.contains("cannot read the PD directory"),
        "{}",
        diags[0]
    );
    let diags = load(&[("pd/a.toml", &pd("A", "h", ""))]).unwrap_err();
    assert!(diags[0].message.contains("no regency.toml"), "{}", diags[0]);
    let diags = load(&[("regency.toml", REGENCY)]).unwrap_err();
    assert!(diags[0].message.contains("no PD files"), "{}", diags[0]);
}

/// Bad input yields diagnostics, never a panic: every truncation of every
/// example file, and every line of it replaced by junk.
#[test]
fn damaged_files_never_panic() {
    let files = crate::load::read_dir(&example_dir()).unwrap();
    for (i, (_, text)) in files.iter().enumerate() {
        let cuts = (0..text.len())
            .step_by(5)
            .filter(|c| text.is_char_boundary(*c));
        let lines: Vec<&str> = text.lines().collect();
        let junk = (0..lines.len()).map(|n| {
            let mut l = lines.clone();
            l[n] = "x = [ { \"é\" = 0x1F }, nip = \"  ]";
            l.join("\n")
        });
        for damaged in cuts.map(|c| text[..c].to_string()).chain(junk) {
            let mut set = files.clone();
            set[i].1 = damaged;
            if let Err(diags) = crate::load_sources(&set) {
                for d in diags {
                    assert!(d.line >= 1 && d.column >= 1, "{d}");
                    let _ = d.to_string();
                }
            }
        }
    }
}

#[test]
fn wrong_types_are_reported_once_where_written() {
    let file = pd(
        "A",
        "h",
        "rpo = 26\nobject_lock_days = -1\nretention_schedule = 3\n",
    );
    let diags = load(&[("regency.toml", REGENCY), ("pd/a.toml", &file)]).unwrap_err();
    let at: Vec<(usize, usize)> = diags.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(4, 7), (5, 20), (6, 22)], "{}", render(&diags));
    assert!(diags[0]
        .message
        .contains("`rpo` in this PD file must be a string in quotes, not an integer"));
    assert!(diags[1].message.contains("between 0 and 3650"));
}
