//! Restore drills, controller side: the custodian's drill grants
//! ([`grant`]), starting a due drill ([`schedule`]: grant, runner, snapshot
//! from the DR store, the job), and turning the runner's report into the
//! signed drill report ([`report`]). The runner's part is
//! `cadang_agent::daemon::drill`.

pub mod grant;
pub mod report;
pub mod schedule;

use crate::api::App;
use crate::state::drills::{self, DrillRecord};
use crate::state::users::UserRecord;

/// The drills `user` may see, newest first.
pub fn list(app: &App, user: &UserRecord) -> crate::error::Result<Vec<DrillRecord>> {
    Ok(app
        .state
        .read(drills::drills)?
        .into_iter()
        .filter(|d| user.covers_pd(&d.pd))
        .collect())
}

/// Drill `id` when `user` may see it.
pub fn get(app: &App, user: &UserRecord, id: &str) -> crate::error::Result<Option<DrillRecord>> {
    Ok(app
        .state
        .read(|txn| drills::drill(txn, id))?
        .filter(|d| user.covers_pd(&d.pd)))
}
