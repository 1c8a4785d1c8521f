use std::time::Duration;

use super::*;
use crate::model::{DataGroup, DrillCheck, DrillPick, Site, SourceKind};

fn example() -> PolicySet {
    match crate::load_dir(&example_dir()) {
        Ok(set) => set,
        Err(diags) => panic!("the shipped example must be valid:\n{}", render(&diags)),
    }
}

#[test]
fn shipped_example_loads() {
    let set = example();
    assert_eq!(set.regency.name, "Kabupaten Contoh");
    assert_eq!(set.regency.zone, "Asia/Makassar");
    assert_eq!(set.regency.stores["pusat-data"].site, Site::OnSite);
    assert_eq!(set.regency.stores["drc"].site, Site::Dr);
    let codes: Vec<&str> = set.pds.keys().map(String::as_str).collect();
    assert_eq!(codes, ["BPKAD", "DINKES", "DISDUKCAPIL", "DISKOMINFO"]);
}

#[test]
fn example_population_registry_dumps_postgres_and_drills() {
    let set = example();
    let pd = &set.pds["DISDUKCAPIL"];
    assert_eq!(pd.group, DataGroup::Kependudukan);
    let (pd2, host) = set.host("siak-db-01").expect("host listed");
    assert_eq!(pd2.code, "DISDUKCAPIL");
    assert_eq!(
        host.sources[0].kind,
        SourceKind::Command {
            stream_name: "siak.dump".into(),
            command: "pg_dump -Fc siak".into()
        }
    );
    let drill = pd
        .drill
        .as_ref()
        .expect("kependudukan defaults give a drill");
    assert_eq!(drill.pick, DrillPick::RandomWithinRetention);
    assert_eq!(drill.rto, Duration::from_secs(4 * 3600));
    assert!(
        matches!(&drill.check, Some(DrillCheck::Postgres { stream, min: 1, .. }) if stream == "siak.dump")
    );
}

#[test]
fn fingerprint_is_stable_and_follows_the_text() {
    let files = crate::load::read_dir(&example_dir()).unwrap();
    let a = crate::load_sources(&files).unwrap().fingerprint;
    assert_eq!(a, crate::load_sources(&files).unwrap().fingerprint);
    assert_eq!(a.len(), 64);
    let mut changed = files.clone();
    changed[1].1.push_str("\n# a comment\n");
    assert_ne!(a, crate::load_sources(&changed).unwrap().fingerprint);
    // Moving the directory does not change it: names are relative.
    let moved: Vec<_> = files
        .iter()
        .map(|(p, t)| {
            (
                PathBuf::from("/elsewhere").join(p.strip_prefix(example_dir()).unwrap()),
                t.clone(),
            )
        })
        .collect();
    assert_eq!(a, crate::load_sources(&moved).unwrap().fingerprint);
}
