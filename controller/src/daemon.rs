//! The controller daemon: state, policies, the scheduler and the HTTPS
//! listener, until its shutdown future completes.
//!
//! Shutdown: stop dispatching, answer held polls, let the site-job pool stop
//! at a safe point within its deadline, close the listener, write the last
//! contact times, return.

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::api::auth::PeerCert;
use crate::api::{self, ApiErr, App};
use crate::ca::Ca;
use crate::config::Config;
use crate::engine::run::JobRunner;
use crate::engine::{Clock, SiteJobPool};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::policy::PolicyLoader;
use crate::state::writer::{Writer, WriterOptions};
use crate::state::{agents, hash_hex, jobs, State};

/// How the daemon is put together; tests replace the loader and runner.
pub struct Options {
    pub loader: PolicyLoader,
    /// `None`: site jobs run through `cadang-core` (the engine's runner).
    pub runner: Option<Arc<dyn JobRunner>>,
    /// Reload policies on SIGHUP (the real daemon; not in tests).
    pub sighup: bool,
    /// How long running site jobs get to reach a safe point at shutdown.
    pub shutdown_deadline: Duration,
    /// Receives the running daemon's shared state once it serves (tests
    /// read the state through it: redb allows one opener per file).
    pub on_ready: Option<tokio::sync::oneshot::Sender<Arc<App>>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            loader: crate::policy::files_loader(),
            runner: None,
            sighup: false,
            shutdown_deadline: Duration::from_secs(60),
            on_ready: None,
        }
    }
}

/// Serves until `shutdown` completes; see [`run_with`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    run_with(listener, config, clock, shutdown, Options::default()).await
}

pub async fn run_with(
    listener: TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
    options: Options,
) -> Result<()> {
    let tls = crate::tls::server_config(
        &config.read_file(&config.tls.ca_cert)?,
        &config.read_file(&config.tls.server_cert)?,
        &config.read_file(&config.tls.server_key)?,
    )?;
    let pool_config = config.pool.to_pool_config();
    // The rolling verification position survives restarts beside the state.
    let positions = config
        .resolve(&config.state)
        .with_extension("verify-positions.json");
    let app = open_app(config, clock.clone(), options.loader)?;
    crate::dispatch::close_orphaned_site_jobs(&app, clock.now())?;
    remember_first_start(&app)?;
    crate::audit::events::started(&app)?;
    let (pool, results) = match options.runner {
        Some(r) => SiteJobPool::start_with(pool_config, clock.clone(), r),
        None => SiteJobPool::start_with(
            pool_config,
            clock.clone(),
            Arc::new(
                crate::engine::CoreRunner::new()
                    .with_state_file(positions)
                    .with_holds(Arc::new(crate::anomaly::StateHolds(app.state.clone()))),
            ),
        ),
    };
    let pool = Arc::new(pool);
    let stop = app.stopping.subscribe();
    let collector = tokio::spawn(crate::dispatch::collect_results(app.clone(), results));
    let dispatcher = tokio::spawn(crate::dispatch::run(
        app.clone(),
        pool.clone(),
        stop.clone(),
    ));
    let flusher = tokio::spawn(flush_seen_every(app.clone(), stop.clone()));
    let shipper = tokio::spawn(crate::audit::ship::ship_every(app.clone(), stop.clone()));
    tokio::spawn(crate::fleet::document::refresh_every(
        app.clone(),
        stop.clone(),
    ));
    if options.sighup {
        tokio::spawn(reload_on_sighup(app.clone(), stop.clone()));
    }
    tracing::info!(addr = ?listener.local_addr().ok(), "controller listening (HTTPS only)");
    let server = tokio::spawn(serve(listener, tls, api::router(app.clone()), stop.clone()));
    if let Some(tx) = options.on_ready {
        let _ = tx.send(app.clone());
    }
    shutdown.await;
    tracing::info!("shutting down: no new jobs, stopping site jobs at a safe point");
    app.stopping.send_replace(true);
    let _ = dispatcher.await;
    match Arc::try_unwrap(pool) {
        Ok(pool) => pool.shutdown(options.shutdown_deadline).await,
        Err(_) => tracing::warn!("site-job pool still shared at shutdown"),
    }
    let _ = server.await;
    let _ = flusher.await;
    collector.abort();
    let _ = collector.await;
    flush_seen(&app)?;
    let _ = shipper.await;
    crate::audit::events::stopping(&app).await;
    // Commits what is queued and releases the state file.
    app.writer.stop();
    Ok(())
}

/// The controller's first start, persisted at once: slots before it never
/// count as missed, slots after it do, across restarts.
fn remember_first_start(app: &App) -> Result<()> {
    let mut book = app.runbook.lock().unwrap_or_else(|p| p.into_inner());
    if book.first_start.is_some() {
        return Ok(());
    }
    let mut draft = book.clone();
    draft.ensure_started(app.clock.now());
    app.state.write(|txn| jobs::save_runbook(txn, &draft))?;
    *book = draft;
    Ok(())
}

/// Opens the state and loads keys and policies.
pub fn open_app(config: Config, clock: Arc<dyn Clock>, loader: PolicyLoader) -> Result<Arc<App>> {
    let state = State::open(&config.resolve(&config.state))?;
    let ca = Ca::load(
        &config.read_file(&config.tls.ca_cert)?,
        &config.read_file(&config.tls.ca_key)?,
    )?;
    let signing_secret = read_signing_key(&config)?;
    let dir = config.resolve(&config.policy_dir);
    let policies = match loader(&dir) {
        Ok(set) => Some(Arc::new(set)),
        Err(diags) => {
            tracing::error!(dir = %dir.display(), errors = diags.len(), "policies invalid; nothing is scheduled until a valid set is loaded\n{}", diags.join("\n"));
            None
        }
    };
    let runbook = state.read(jobs::load_runbook)?;
    let audit = open_audit(&state, &signing_secret)?;
    let fleet = crate::fleet::FleetView::load(&state)?;
    let writer = Writer::start(state.clone(), WriterOptions::default())?;
    Ok(Arc::new(App {
        state,
        config,
        ca,
        signing_secret,
        clock,
        policies: RwLock::new(policies),
        loader,
        runbook: Mutex::new(runbook),
        live: Mutex::new(Default::default()),
        metrics: Metrics::new(),
        wake: Notify::new(),
        stopping: watch::channel(false).0,
        audit,
        writer,
        fleet,
    }))
}

/// Entries between signed checkpoints: a cut-off tail is detected against
/// the last checkpoint, so this bounds how much can go unnoticed.
pub const AUDIT_CHECKPOINT_EVERY: u64 = 16;

fn open_audit(
    state: &Arc<State>,
    signing_secret: &[u8; 32],
) -> Result<crate::audit::Auditor<Arc<crate::audit::RedbAuditLog>>> {
    let log = crate::audit::RedbAuditLog::open(state.clone())
        .map_err(|e| Error::State(format!("the audit log cannot be opened: {e}")))?;
    let key = crate::report::SigningKey::from_hex(&hex::encode(signing_secret))
        .map_err(|e| Error::State(e.to_string()))?;
    Ok(crate::audit::Auditor::new(
        Arc::new(log),
        key,
        AUDIT_CHECKPOINT_EVERY,
    ))
}

pub fn read_signing_key(config: &Config) -> Result<[u8; 32]> {
    let text = config.read_file(&config.signing_key)?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| Error::Config {
        path: config.resolve(&config.signing_key),
        message: "the signing key must be 64 hex digits".into(),
    })?;
    Ok(key)
}

/// Loads the policy directory again; an invalid set is refused with every
/// located error and the running set stays.
pub async fn reload_policies(app: &Arc<App>) -> Result<cadang_proto::api::ReloadResponse, ApiErr> {
    reload_policies_by(app, crate::audit::CONTROLLER_ACTOR).await
}

/// [`reload_policies`] asked for by `actor` (audit entry `policy.reload`;
/// a reload the log cannot hold is not done).
pub async fn reload_policies_by(
    app: &Arc<App>,
    actor: &str,
) -> Result<cadang_proto::api::ReloadResponse, ApiErr> {
    let previous = app.policies().map(|p| p.fingerprint.clone());
    let dir = app.config.resolve(&app.config.policy_dir);
    let loader = app.loader.clone();
    let d = dir.clone();
    let loaded = tokio::task::spawn_blocking(move || loader(&d))
        .await
        .map_err(|e| ApiErr::from(Error::Policies(e.to_string())))?;
    match loaded {
        Ok(set) => {
            let response = cadang_proto::api::ReloadResponse {
                fingerprint: set.fingerprint.clone(),
                pds: set.pds.keys().cloned().collect(),
            };
            app.record(crate::audit::events::policy_reload(
                actor,
                previous.as_deref(),
                Ok(&response.fingerprint),
            ))?;
            *app.policies.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(set));
            app.wake.notify_one();
            tracing::info!(fingerprint = %response.fingerprint, "policies reloaded");
            Ok(response)
        }
        Err(details) => {
            tracing::error!(dir = %dir.display(), errors = details.len(), "policy reload refused; the running set stays");
            app.record(crate::audit::events::policy_reload(
                actor,
                previous.as_deref(),
                Err(details.len()),
            ))?;
            Err(ApiErr {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                error: format!(
                    "the policies in {} have {} error(s); nothing changed, the running set stays",
                    dir.display(),
                    details.len()
                ),
                details,
            })
        }
    }
}

async fn reload_on_sighup(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /api/v1/policies/reload");
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => { let _ = reload_policies(&app).await; }
            _ = stop.changed() => return,
        }
    }
}

fn flush_seen(app: &App) -> Result<()> {
    let seen = app.take_dirty_seen();
    if seen.is_empty() {
        return Ok(());
    }
    app.state.write(|txn| agents::record_seen(txn, &seen))
}

/// Last-contact times are soft state: written every 30 s in one commit,
/// not on each of 10,000 agents' polls. The fleet view reads agents and
/// PDs again at the same pace (a change no one announced shows within
/// half a minute).
async fn flush_seen_every(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = write_seen(&app).await {
            tracing::warn!(error = %e, "writing last-contact times failed");
        }
        let a = app.clone();
        let r = tokio::task::spawn_blocking(move || {
            release_free_memory();
            a.fleet.refresh_agents(&a.state)
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "reading agents for fleet status failed");
        }
    }
}

/// Hands memory freed inside glibc's heaps back to the system. With
/// 10,000 connections allocating and freeing across threads, freed pages
/// stay resident in the allocator's arenas; trimming every 30 s keeps RSS
/// near what is in use.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no
    // pointers of ours and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Agents whose last contact one writer op records: 10,000 in one op
/// would hold up the polls and reports of that commit by ~100 ms.
const SEEN_PER_OP: usize = 500;

/// The last-contact times in chunks, one after the other, so each rides
/// along with a different batch of the writer.
async fn write_seen(app: &App) -> Result<()> {
    let seen = app.take_dirty_seen();
    for chunk in seen.chunks(SEEN_PER_OP) {
        let chunk = chunk.to_vec();
        app.writer
            .write(move |b| agents::record_seen(b.txn, &chunk))
            .await?;
    }
    Ok(())
}

async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                conns.spawn(connection(acceptor.clone(), tcp, router.clone(), stop.clone()));
                while conns.try_join_next().is_some() {}
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
    // Wait for the aborted ones too: each holds the state, which the next
    // opener (a restart in the same process) needs released.
    while conns.join_next().await.is_some() {}
}

/// Plaintext rustls may queue per connection (default 64 KiB).
const TLS_BUFFER_LIMIT: usize = 16 * 1024;
/// hyper's per-connection read buffer bound (its minimum is 8 KiB).
const HTTP_BUFFER_LIMIT: usize = 16 * 1024;

/// One TLS connection. Plain HTTP, a failed handshake or a certificate from
/// another CA ends here, before any route runs.
async fn connection(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let mut tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => return,
    };
    // 10,000 agents hold a connection each: bound what one may buffer
    // (a large answer such as fleet status waits for the socket instead).
    tls.get_mut().1.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
    let peer = PeerCert(
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| hash_hex(c.as_ref())),
    );
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        // Requests are small JSON; the default lets one connection's read
        // buffer grow to ~400 KiB and keep it.
        .max_buf_size(HTTP_BUFFER_LIMIT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// For `controller init` and tests: the default policy directory path.
pub fn default_policy_dir(base: &Path) -> std::path::PathBuf {
    base.join("policies")
}
