//! The controller's engine: when work falls due (a clock it is given, cron in
//! each policy's zone) and how site jobs run (a bounded pool over
//! `cadang-core`). Knows nothing of HTTP or TLS.

pub mod book;
pub mod clock;
pub mod plan;
pub mod pool;
pub mod run;
pub mod sitejob;
pub mod stores;

pub use cadang_policies::model::Site;
pub use clock::{Clock, ManualClock, SystemClock};
pub use plan::{due, next_wakeup, window_end, Due, RunBook, TaskKey};
pub use pool::{PoolConfig, SiteJobPool, SubmitError};
pub use run::{CoreRunner, JobError, JobRunner, Report};
pub use sitejob::{SiteJob, SiteJobKind, SiteJobResult, SiteOutcome};
pub use stores::{pd_repo_url, StoreTarget};
