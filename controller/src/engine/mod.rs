//! The controller's engine: when work falls due (a clock it is given, cron in
//! each policy's zone) and how site jobs run (a bounded pool over
//! `cadang-core`). Knows nothing of HTTP or TLS.
