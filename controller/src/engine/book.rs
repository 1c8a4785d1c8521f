//! The task keys the planner schedules, and what the controller remembers
//! between runs ([`RunBook`], persisted by the daemon as JSON).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cadang_policies::model::Site;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskKey {
    Backup {
        pd: String,
        host: String,
        source: String,
    },
    Replicate {
        pd: String,
    },
    Verify {
        pd: String,
        #[serde(with = "site_serde")]
        site: Site,
    },
    Retention {
        pd: String,
        #[serde(with = "site_serde")]
        site: Site,
    },
    Drill {
        pd: String,
    },
}

impl TaskKey {
    pub fn pd(&self) -> &str {
        match self {
            TaskKey::Backup { pd, .. }
            | TaskKey::Replicate { pd }
            | TaskKey::Verify { pd, .. }
            | TaskKey::Retention { pd, .. }
            | TaskKey::Drill { pd } => pd,
        }
    }

    /// A stable text form (`backup/DISDUKCAPIL/srv1/db`), for logs, the jitter
    /// hash and redb keys alike.
    pub fn label(&self) -> String {
        match self {
            TaskKey::Backup { pd, host, source } => format!("backup/{pd}/{host}/{source}"),
            TaskKey::Replicate { pd } => format!("replicate/{pd}"),
            TaskKey::Verify { pd, site } => format!("verify/{pd}/{}", site_serde::name(*site)),
            TaskKey::Retention { pd, site } => {
                format!("retention/{pd}/{}", site_serde::name(*site))
            }
            TaskKey::Drill { pd } => format!("drill/{pd}"),
        }
    }
}

/// `Site` as `"onsite"` / `"dr"` in JSON (the policies crate's type has no
/// serde of its own).
pub mod site_serde {
    use cadang_policies::model::Site;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn name(site: Site) -> &'static str {
        match site {
            Site::OnSite => "onsite",
            Site::Dr => "dr",
        }
    }

    pub fn serialize<S: Serializer>(site: &Site, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*site))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Site, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "onsite" => Ok(Site::OnSite),
            "dr" => Ok(Site::Dr),
            other => Err(serde::de::Error::custom(format!(
                "unknown site {other:?}: expected \"onsite\" or \"dr\""
            ))),
        }
    }
}

/// What the controller remembers between runs (persisted by the daemon as JSON in redb).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunBook {
    /// The newest scheduled slot already dispatched for each task.
    #[serde(with = "keyed_map")]
    pub last_slot: BTreeMap<TaskKey, DateTime<Utc>>,
    /// End of the newest successful backup per PD (replication follows backups).
    pub last_backup_success: BTreeMap<String, DateTime<Utc>>,
    /// Start of the newest replication per PD.
    pub last_replication: BTreeMap<String, DateTime<Utc>>,
    /// When this controller first ran: slots before it are never "missed".
    pub first_start: Option<DateTime<Utc>>,
}

/// JSON object keys must be strings; a map keyed by an enum is stored as a
/// list of `[key, value]` pairs instead.
mod keyed_map {
    use super::TaskKey;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<TaskKey, DateTime<Utc>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&TaskKey, &DateTime<Utc>)> = map.iter().collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<TaskKey, DateTime<Utc>>, D::Error> {
        let pairs: Vec<(TaskKey, DateTime<Utc>)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}

impl RunBook {
    /// Records that `due` was handed out, so it is not due again.
    pub fn mark_dispatched(&mut self, due: &Due) {
        let entry = self.last_slot.entry(due.key.clone()).or_insert(due.slot);
        if *entry < due.slot {
            *entry = due.slot;
        }
    }

    /// Sets `first_start` if this is the controller's first run; call once at
    /// start-up. Without it nothing counts as missed before `now`.
    pub fn ensure_started(&mut self, now: DateTime<Utc>) {
        self.first_start.get_or_insert(now);
    }

    /// Records a successful backup of `pd` that ended at `end`.
    pub fn record_backup_success(&mut self, pd: &str, end: DateTime<Utc>) {
        newest(&mut self.last_backup_success, pd, end);
    }

    /// Records that a replication of `pd` started at `start`.
    pub fn record_replication_start(&mut self, pd: &str, start: DateTime<Utc>) {
        newest(&mut self.last_replication, pd, start);
    }
}

fn newest(map: &mut BTreeMap<String, DateTime<Utc>>, pd: &str, t: DateTime<Utc>) {
    let entry = map.entry(pd.to_string()).or_insert(t);
    if *entry < t {
        *entry = t;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    pub key: TaskKey,
    pub slot: DateTime<Utc>,
    /// slot + stable per-task jitter
    pub not_before: DateTime<Utc>,
}
