//! Prometheus metrics (OpenMetrics text via prometheus-client).
//!
//! Gauges about the fleet (last success, RPO, lag, queues, connected
//! agents) are recomputed from the state at each scrape, so they are right
//! after a restart; counters of job outcomes count since the start.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use cadang_proto::agent::{JobReport, ReportKind};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::api::App;
use crate::error::{Error, Result};
use crate::state::agents::AgentRecord;
use crate::state::jobs;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub pd: String,
    pub host: String,
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SiteLabels {
    pub pd: String,
    pub site: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DrillLabels {
    pub pd: String,
    /// `passed` or `failed`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PdLabels {
    pub pd: String,
}

type FGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Mutex<Registry>,
    last_success: Family<SourceLabels, FGauge>,
    duration: Family<SourceLabels, FGauge>,
    bytes_read: Family<SourceLabels, Gauge>,
    bytes_added: Family<SourceLabels, Gauge>,
    lag: Family<SiteLabels, Gauge>,
    rpo_ok: Family<SiteLabels, Gauge>,
    outcomes: Family<OutcomeLabels, Counter>,
    queues: Family<QueueLabels, Gauge>,
    connected: Gauge,
    // ransomware early warning
    anomaly_flagged: Family<SourceLabels, Gauge>,
    anomaly_hold: Family<SourceLabels, Gauge>,
    // restore drills
    drill_last: Family<DrillLabels, Gauge>,
    drill_failed: Family<PdLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("cadang")),
            last_success: Family::default(),
            duration: Family::default(),
            bytes_read: Family::default(),
            bytes_added: Family::default(),
            lag: Family::default(),
            rpo_ok: Family::default(),
            outcomes: Family::default(),
            queues: Family::default(),
            connected: Gauge::default(),
            anomaly_flagged: Family::default(),
            anomaly_hold: Family::default(),
            drill_last: Family::default(),
            drill_failed: Family::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|p| p.into_inner());
            r.register(
                "backup_last_success_timestamp_seconds",
                "End of the newest successful backup of a source",
                m.last_success.clone(),
            );
            r.register(
                "backup_last_duration_seconds",
                "Duration of the newest backup of a source",
                m.duration.clone(),
            );
            r.register(
                "backup_last_bytes_read",
                "Bytes read by the newest backup of a source",
                m.bytes_read.clone(),
            );
            r.register(
                "backup_last_bytes_added",
                "Bytes added to the store by the newest backup of a source",
                m.bytes_added.clone(),
            );
            r.register(
                "site_lag_seconds",
                "Age of the oldest source's newest copy at a site",
                m.lag.clone(),
            );
            r.register(
                "site_rpo_ok",
                "1 when every source's newest copy at the site is younger than the PD's RPO",
                m.rpo_ok.clone(),
            );
            r.register(
                "job_outcomes",
                "Jobs finished since the controller started, by kind and outcome",
                m.outcomes.clone(),
            );
            r.register(
                "queue_length",
                "Jobs waiting or running, by queue",
                m.queues.clone(),
            );
            r.register(
                "connected_agents",
                "Agents that polled within the last 90 seconds",
                m.connected.clone(),
            );
            r.register(
                "anomaly_flagged",
                "1 when the newest measured backup of a source was flagged as possible ransomware",
                m.anomaly_flagged.clone(),
            );
            r.register(
                "anomaly_hold_active",
                "1 while a ransomware retention hold keeps a source's snapshots (until an operator and the Wali Data clear it)",
                m.anomaly_hold.clone(),
            );
            r.register(
                "drill_last",
                "1 for the result (passed or failed) of the PD's newest restore drill, 0 for the other",
                m.drill_last.clone(),
            );
            r.register(
                "drill_failed",
                "Restore drills of a PD that failed (verification, check, over the RTO or RPO, DR copy damaged, no grant) since the controller started",
                m.drill_failed.clone(),
            );
        }
        m
    }

    /// A drill of `pd` ended (or could not start).
    pub fn drill_finished(&self, pd: &str, passed: bool) {
        for (result, on) in [("passed", passed), ("failed", !passed)] {
            self.drill_last
                .get_or_create(&DrillLabels {
                    pd: pd.into(),
                    result: result.into(),
                })
                .set(i64::from(on));
        }
        if !passed {
            self.drill_failed
                .get_or_create(&PdLabels { pd: pd.into() })
                .inc();
        }
    }

    /// Counts a finished job.
    pub fn job_finished(&self, kind: &str, outcome: &str) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn record_report(&self, _agent: &AgentRecord, r: &JobReport) {
        let kind = match r.kind {
            ReportKind::Backup { .. } => "backup",
            ReportKind::Restore { .. } => "restore",
            ReportKind::Drill { .. } => "drill",
        };
        self.job_finished(kind, jobs::outcome_name(r.outcome));
    }

    /// Refreshes the fleet gauges from the state and renders the registry.
    pub fn render(&self, app: &App) -> Result<String> {
        self.refresh(app)?;
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &r)
            .map_err(|e| Error::Invalid(format!("metrics encoding: {e}")))?;
        Ok(out)
    }

    fn refresh(&self, app: &App) -> Result<()> {
        let now = app.clock.now();
        // Last runs from the fleet view (memory), not 10,000 decodes per scrape.
        let runs = app.fleet.runs();
        let unfinished = app.state.read(jobs::unfinished)?;
        for r in runs {
            let l = SourceLabels {
                pd: r.pd.clone(),
                host: r.host.clone(),
                source: r.source.clone(),
            };
            if let Some(t) = r.last_success {
                self.last_success
                    .get_or_create(&l)
                    .set(t.timestamp() as f64);
            }
            if let Some(d) = r.duration_seconds {
                self.duration.get_or_create(&l).set(d);
            }
            self.bytes_read.get_or_create(&l).set(r.bytes_read as i64);
            self.bytes_added.get_or_create(&l).set(r.bytes_added as i64);
        }
        let fleet = crate::fleet::status(app, |_| true)?;
        for pd in &fleet.pds {
            for s in &pd.sites {
                let l = SiteLabels {
                    pd: pd.pd.clone(),
                    site: s.site.clone(),
                };
                self.lag.get_or_create(&l).set(s.lag_seconds.unwrap_or(-1));
                self.rpo_ok.get_or_create(&l).set(i64::from(s.rpo_ok));
            }
        }
        let count = |pred: &dyn Fn(&jobs::JobRecord) -> bool| {
            unfinished.iter().filter(|j| pred(j)).count() as i64
        };
        let agent_queued = count(&|j| j.agent_id.is_some() && j.state == jobs::JobState::Queued);
        let agent_running = count(&|j| j.agent_id.is_some() && j.state != jobs::JobState::Queued);
        let site = count(&|j| j.agent_id.is_none());
        for (q, n) in [
            ("agent_queued", agent_queued),
            ("agent_running", agent_running),
            ("site", site),
        ] {
            self.queues
                .get_or_create(&QueueLabels { queue: q.into() })
                .set(n);
        }
        self.connected.set(app.connected_count(now) as i64);
        self.refresh_anomalies(app)?;
        Ok(())
    }
}

impl Metrics {
    /// Ransomware early warning: the newest verdict and the hold of every
    /// measured source (a cleared hold reads 0, so the alert resolves).
    fn refresh_anomalies(&self, app: &App) -> Result<()> {
        use crate::state::anomalies;
        let (statuses, holds) = app.state.read(|txn| {
            Ok((
                anomalies::statuses(txn, None)?,
                anomalies::holds(txn, None)?,
            ))
        })?;
        let labels = |pd: &str, host: &str, source: &str| SourceLabels {
            pd: pd.into(),
            host: host.into(),
            source: source.into(),
        };
        for s in &statuses {
            self.anomaly_flagged
                .get_or_create(&labels(&s.pd, &s.host, &s.source))
                .set(i64::from(s.last_flagged));
        }
        for h in &holds {
            self.anomaly_hold
                .get_or_create(&labels(&h.pd, &h.host, &h.source))
                .set(i64::from(h.active()));
        }
        Ok(())
    }
}
