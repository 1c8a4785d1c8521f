//! The resolved policy set: what the controller schedules from, after the
//! regency file and every PD file were read, checked and merged with the
//! defaults of each PD's data group.
//!
//! These are plain values: parsing and located error reports live in
//! [`crate::load`]; nothing here reads a file or a store.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::retention::KeepPolicy;
use crate::schedule::Schedule;

/// Everything one controller schedules: one regency and its PDs.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub regency: Regency,
    /// By PD code.
    pub pds: BTreeMap<String, PdPolicy>,
    /// Changes when any file of the set changes (a hash of the
    /// sources' text), so agents can be told their policy is stale.
    pub fingerprint: String,
}

#[derive(Debug, Clone)]
pub struct Regency {
    pub name: String,
    /// `Asia/Jakarta` (WIB), `Asia/Makassar` (WITA), `Asia/Jayapura` (WIT).
    pub zone: String,
    /// Store names a PD policy may refer to, with what they are for. The
    /// URLs and credentials live in the controller's config, never here.
    pub stores: BTreeMap<String, StoreRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRef {
    pub name: String,
    pub site: Site,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// The on-site store in the data center (pusat data).
    OnSite,
    /// The disaster-recovery site (pusat pemulihan data).
    Dr,
}

/// One PD (Perangkat Daerah) with every default applied.
#[derive(Debug, Clone)]
pub struct PdPolicy {
    /// Short upper-case code (`DISDUKCAPIL`), also the repository's PD.
    pub code: String,
    pub name: String,
    pub group: DataGroup,
    pub wali_data: WaliData,
    pub hosts: Vec<HostPolicy>,
    pub retention: KeepPolicy,
    /// Name of an on-site store in [`Regency::stores`].
    pub onsite_store: String,
    /// Name of a DR store in [`Regency::stores`].
    pub dr_store: String,
    /// Recovery-point objective: the newest snapshot of every source, at
    /// both sites, must be younger than this.
    pub rpo: Duration,
    pub replication: Replication,
    /// Days of S3 Object Lock (COMPLIANCE) on the DR copy; 0 = none.
    pub object_lock_days: u32,
    pub verification: Verification,
    /// When forget + prune run at both sites.
    pub retention_schedule: Schedule,
    pub drill: Option<DrillPolicy>,
    /// `[anomaly]` of the PD (over its defaults).
    pub anomaly: AnomalyPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaliData {
    pub name: String,
    /// 18 digits, validated by [`crate::nip`].
    pub nip: String,
}

#[derive(Debug, Clone)]
pub struct HostPolicy {
    pub name: String,
    pub sources: Vec<SourcePolicy>,
}

#[derive(Debug, Clone)]
pub struct SourcePolicy {
    /// Unique within the host.
    pub name: String,
    pub kind: SourceKind,
    pub schedule: Schedule,
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    /// The source's `[hosts.sources.anomaly]` over the PD's.
    pub anomaly: AnomalyPolicy,
}

/// Margins of the ransomware early warning (`[anomaly]`); `None` keeps the
/// controller's built-in value. Shares are fractions (0.02 = 2%).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyPolicy {
    /// Clean backups the baseline is computed over.
    pub history: Option<u32>,
    /// Clean backups a source needs before its baseline is used (until
    /// then only the fixed floors apply).
    pub min_history: Option<u32>,
    /// MAD-sigmas above the baseline that count as leaving it.
    pub margin: Option<f64>,
    /// Lowest share of files turned random in one backup that can flag.
    pub entropy_share: Option<f64>,
    /// Lowest share of files renamed to another extension that can flag.
    pub extension_share: Option<f64>,
    /// Nights a slow attack is summed over.
    pub slow_nights: Option<u32>,
    /// Share of files turned random over `slow_nights` that flags.
    pub slow_share: Option<f64>,
    /// Fewer files than this never flag by the share rules.
    pub min_files: Option<u32>,
    /// Per-weekday baselines when the data shows a weekly rhythm.
    pub weekday_rhythm: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Paths(Vec<String>),
    /// A database dump or other stream: `command`'s stdout stored as
    /// `stream_name`.
    Command {
        stream_name: String,
        command: String,
    },
}

#[derive(Debug, Clone)]
pub struct Replication {
    /// Local-time windows (`22:00-05:00`) in which replication may start;
    /// empty = any time.
    pub windows: Vec<Window>,
    /// Bytes per second; `None` = unlimited.
    pub bandwidth_limit: Option<u64>,
    /// How long after a backup's end replication of the PD is started (it
    /// then waits for the next window).
    pub delay: Duration,
}

/// A daily window in the regency's zone, minutes since local midnight.
/// `start > end` wraps past midnight (`22:00-05:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_minute: u16,
    pub end_minute: u16,
}

impl Window {
    /// Whether `minute` (since local midnight) lies inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start_minute <= self.end_minute {
            (self.start_minute..self.end_minute).contains(&minute)
        } else {
            minute >= self.start_minute || minute < self.end_minute
        }
    }
}

#[derive(Debug, Clone)]
pub struct Verification {
    /// When both sites are checked (structure, plus `read_share` of packs).
    pub schedule: Schedule,
    /// Share of pack data re-hashed per run, percent 0-100 (rolling).
    pub read_share_percent: u8,
}

#[derive(Debug, Clone)]
pub struct DrillPolicy {
    pub schedule: Schedule,
    /// Recovery-time objective for restore + verify + check.
    pub rto: Duration,
    /// Which snapshot a drill restores.
    pub pick: DrillPick,
    pub check: Option<DrillCheck>,
    /// The drill runner host (an agent with the drill-runner role).
    pub runner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillPick {
    Latest,
    RandomWithinRetention,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrillCheck {
    /// A command run in the sandbox (`pg_restore --list {file}`); exit 0 passes.
    Command { command: String },
    /// Restore a PostgreSQL dump into a throwaway cluster and run `query`,
    /// whose single number must be at least `min`.
    Postgres {
        stream: String,
        query: String,
        min: i64,
    },
}

/// The data groups of Bengkulu Tengah 41/2020 Pasal 10(3), and "lainnya".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataGroup {
    Pelayanan,
    AdministrasiDanManajemen,
    Legislasi,
    PembangunanDaerah,
    Keuangan,
    Kepegawaian,
    Pemerintahan,
    Kewilayahan,
    Kemasyarakatan,
    Kependudukan,
    Kesehatan,
    Pendidikan,
    Ketenagakerjaan,
    Pertanian,
    Perdagangan,
    PerikananDanPeternakan,
    Transportasi,
    PariwisataDanPerhotelan,
    Prasarana,
    Lainnya,
}

impl DataGroup {
    /// Every group with the key used in policy files.
    pub const ALL: [(DataGroup, &'static str); 20] = [
        (DataGroup::Pelayanan, "pelayanan"),
        (
            DataGroup::AdministrasiDanManajemen,
            "administrasi-dan-manajemen",
        ),
        (DataGroup::Legislasi, "legislasi"),
        (DataGroup::PembangunanDaerah, "pembangunan-daerah"),
        (DataGroup::Keuangan, "keuangan"),
        (DataGroup::Kepegawaian, "kepegawaian"),
        (DataGroup::Pemerintahan, "pemerintahan"),
        (DataGroup::Kewilayahan, "kewilayahan"),
        (DataGroup::Kemasyarakatan, "kemasyarakatan"),
        (DataGroup::Kependudukan, "kependudukan"),
        (DataGroup::Kesehatan, "kesehatan"),
        (DataGroup::Pendidikan, "pendidikan"),
        (DataGroup::Ketenagakerjaan, "ketenagakerjaan"),
        (DataGroup::Pertanian, "pertanian"),
        (DataGroup::Perdagangan, "perdagangan"),
        (
            DataGroup::PerikananDanPeternakan,
            "perikanan-dan-peternakan",
        ),
        (DataGroup::Transportasi, "transportasi"),
        (
            DataGroup::PariwisataDanPerhotelan,
            "pariwisata-dan-perhotelan",
        ),
        (DataGroup::Prasarana, "prasarana"),
        (DataGroup::Lainnya, "lainnya"),
    ];

    pub fn key(self) -> &'static str {
        DataGroup::ALL
            .iter()
            .find(|(g, _)| *g == self)
            .map(|(_, k)| *k)
            .unwrap_or("lainnya")
    }

    pub fn from_key(key: &str) -> Option<DataGroup> {
        DataGroup::ALL
            .iter()
            .find(|(_, k)| *k == key)
            .map(|(g, _)| *g)
    }
}

impl PolicySet {
    /// The on-site and DR store names a PD uses, with the regency's record.
    pub fn stores_of(&self, pd: &str) -> Option<(&StoreRef, &StoreRef)> {
        let p = self.pds.get(pd)?;
        Some((
            self.regency.stores.get(&p.onsite_store)?,
            self.regency.stores.get(&p.dr_store)?,
        ))
    }

    /// The PD and host policy of `host`, if any PD lists it.
    pub fn host(&self, host: &str) -> Option<(&PdPolicy, &HostPolicy)> {
        self.pds
            .values()
            .find_map(|p| p.hosts.iter().find(|h| h.name == host).map(|h| (p, h)))
    }
}
