//! The simulation: every day the dataset changes, a real backup runs
//! through `cadang_agent::backup` into a real repository, and the day's
//! signals go through the controller's verdict.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cadang_agent::{backup, BackupOptions, Progress, Source};
use cadang_controller::anomaly::{self, Observation, Thresholds, Verdict};
use cadang_core::backend::LocalBackend;
use cadang_core::config::ChunkerParams;
use cadang_core::keys::Credentials;
use cadang_core::Repository;
use chrono::{Duration, TimeZone, Utc};

use crate::attacks::{self, Attack};
use crate::dataset;
use crate::days::{self, Day};

pub const PASSPHRASE: &str = "kata sandi wali data uji";

pub struct Plan {
    pub files: usize,
    /// Ordinary days after the first backup (day 0).
    pub days: u64,
    pub seed: u64,
    pub attack: Option<Attack>,
    /// One ordinary day after the attack, which must not be flagged.
    pub day_after: bool,
}

/// One row of the figures.
#[derive(Clone, Debug)]
pub struct Row {
    pub day: u64,
    pub what: String,
    pub snapshot: String,
    pub files: u64,
    pub new: u64,
    pub changed: u64,
    pub deleted: u64,
    pub renamed: u64,
    pub transitions: u64,
    pub extension_changed: u64,
    pub known_extension: u64,
    pub note_dirs: u64,
    pub incompressible: f64,
    /// Files the attack touched that night.
    pub touched: Option<usize>,
    pub flagged: bool,
    pub reasons: String,
    pub backup_ms: u128,
}

pub struct Run {
    pub tmp: tempfile::TempDir,
    /// The backed-up tree.
    pub root: PathBuf,
    pub repo: Arc<Repository>,
    pub rows: Vec<Row>,
    pub observations: Vec<Observation>,
    pub verdicts: Vec<Verdict>,
    /// Content digests of the tree at the last few ordinary days, by snapshot.
    pub digests: Vec<(String, Vec<(PathBuf, blake3::Hash)>)>,
    /// Index of the first attack night in `rows`.
    pub attack_start: Option<usize>,
}

struct Backup {
    repo: Arc<Repository>,
    credentials: Vec<u8>,
    cache: PathBuf,
}

impl Backup {
    async fn run(&self, root: &Path) -> (cadang_agent::BackupSummary, u128) {
        let started = Instant::now();
        let s = backup(
            self.repo.clone(),
            Credentials::from_json(&self.credentials).unwrap(),
            Source::Paths(vec![root.to_path_buf()]),
            BackupOptions {
                host: "srv-dinkes".into(),
                agent: "sim".into(),
                tags: vec![],
                excludes: vec![],
                cache_dir: Some(self.cache.clone()),
                workers: 2,
            },
            Arc::new(Progress::default()),
        )
        .await
        .expect("the backup succeeds");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        (s, started.elapsed().as_millis())
    }
}

/// Runs a whole plan: day 0 (first backup), the ordinary days, the attack
/// nights, and optionally one ordinary day after.
pub async fn run(plan: &Plan) -> Run {
    let (mut run, b) = setup(plan).await;
    for night in nights(plan) {
        let touched = run.change_tree(plan, &night);
        let (summary, ms) = b.run(&run.root).await;
        run.record(plan, night, summary, ms, touched);
    }
    run
}

/// The dataset and an empty repository, in a new temporary directory.
async fn setup(plan: &Plan) -> (Run, Backup) {
    std::env::set_var("CADANG_SCRYPT_LOG_N", "10");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("srv");
    dataset::create(&root, plan.files, plan.seed);
    let init = Repository::init(
        Arc::new(LocalBackend::new(tmp.path().join("repo"))),
        "DINKES",
        "sim",
        PASSPHRASE,
        ChunkerParams::default(),
    )
    .await
    .unwrap();
    let repo = Arc::new(init.repo);
    let b = Backup {
        repo: repo.clone(),
        credentials: init.credentials.to_json(),
        cache: tmp.path().join("cache"),
    };
    let run = Run {
        root,
        repo,
        rows: Vec::new(),
        observations: Vec::new(),
        verdicts: Vec::new(),
        digests: Vec::new(),
        attack_start: None,
        tmp,
    };
    (run, b)
}

/// One night of the plan: what happens to the tree before its backup.
struct Night {
    day: u64,
    what: String,
    attack: Option<Attack>,
    /// Which night of the attack (0 for the first).
    night: u64,
}

fn nights(plan: &Plan) -> Vec<Night> {
    let night = |day, what: String, attack, night| Night {
        day,
        what,
        attack,
        night,
    };
    let mut nights = vec![night(0, "first backup".into(), None, 0)];
    for day in 1..=plan.days {
        nights.push(night(
            day,
            days::kind_of_day(day, plan.days).name().into(),
            None,
            0,
        ));
    }
    if let Some(a) = plan.attack {
        for n in 0..a.nights() {
            nights.push(night(
                plan.days + 1 + n,
                format!("ATTACK {}", a.name()),
                Some(a),
                n,
            ));
        }
        if plan.day_after {
            nights.push(night(
                plan.days + 1 + a.nights(),
                "ordinary (after the attack)".into(),
                None,
                0,
            ));
        }
    }
    nights
}

impl Run {
    /// The day's ordinary work and/or the attack; returns the files the
    /// attack touched.
    fn change_tree(&mut self, plan: &Plan, n: &Night) -> Option<usize> {
        match n.attack {
            Some(a) => {
                self.attack_start.get_or_insert(self.rows.len());
                if a.with_ordinary_work() {
                    days::apply(&self.root, plan.seed, n.day, Day::Ordinary);
                }
                Some(attacks::apply(&self.root, plan.seed, a, n.night))
            }
            None if n.day > 0 => {
                days::apply(
                    &self.root,
                    plan.seed,
                    n.day,
                    days::kind_of_day(n.day, plan.days),
                );
                None
            }
            None => None,
        }
    }

    /// The night's signals through the verdict, and its row of figures.
    fn record(
        &mut self,
        plan: &Plan,
        n: Night,
        summary: cadang_agent::BackupSummary,
        ms: u128,
        touched: Option<usize>,
    ) {
        let snapshot = summary.snapshot.to_hex();
        if n.attack.is_none() && self.attack_start.is_none() && n.day + 3 > plan.days {
            self.digests
                .push((snapshot.clone(), dataset::digest(&self.root)));
        }
        self.observations.push(Observation {
            snapshot: snapshot.clone(),
            time: Utc.with_ymd_and_hms(2026, 10, 1, 19, 0, 0).unwrap()
                + Duration::days(n.day as i64),
            signals: summary.signals.expect("signals are measured"),
        });
        self.verdicts = anomaly::evaluate(&self.observations, &Thresholds::default());
        let v = self.verdicts.last().unwrap();
        let s = &self.observations.last().unwrap().signals;
        self.rows.push(Row {
            day: n.day,
            what: n.what,
            snapshot,
            files: s.files_total,
            new: s.files_new,
            changed: s.files_changed,
            deleted: s.files_deleted,
            renamed: s.files_renamed,
            transitions: s.entropy_transitions,
            extension_changed: s.extension_changed,
            known_extension: s.known_extension_files,
            note_dirs: s.ransom_note_dirs,
            incompressible: s.shares.incompressible,
            touched,
            flagged: v.flagged,
            reasons: v.summary(false),
            backup_ms: ms,
        });
    }
}

/// The figures as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| day | what | files | new | changed | deleted | renamed | → random | ext. changed | known ext. | note dirs | incompressible new data | attack touched | flagged | backup |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {} | {} | {:.2} s |\n",
            r.day,
            r.what,
            r.files,
            r.new,
            r.changed,
            r.deleted,
            r.renamed,
            r.transitions,
            r.extension_changed,
            r.known_extension,
            r.note_dirs,
            r.incompressible * 100.0,
            r.touched.map_or("".into(), |n| n.to_string()),
            if r.flagged { "**FLAGGED**" } else { "no" },
            r.backup_ms as f64 / 1000.0
        ));
    }
    out
}

/// Restores `snapshot` into a fresh directory and returns the digest of the
/// restored tree.
pub async fn restore_digest(run: &Run, snapshot: &str) -> Vec<(PathBuf, blake3::Hash)> {
    use cadang_agent::restore::{restore, RestoreOptions};
    use cadang_core::repository::BlobReader;
    let identity = run.repo.unlock(PASSPHRASE).await.unwrap();
    let reader = BlobReader::new(&run.repo, &identity).await.unwrap();
    let snap = run.repo.find_snapshot(snapshot).await.unwrap();
    let target = run.tmp.path().join(format!("restored-{}", &snapshot[..8]));
    let summary = restore(
        &reader,
        &snap,
        &RestoreOptions {
            target: target.clone(),
            include: vec![],
            progress: None,
        },
    )
    .await
    .unwrap();
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    let inner = target.join(run.root.strip_prefix("/").unwrap());
    dataset::digest(&inner)
}
