//! `gatehouse serve`: open the store, apply migrations, start the projections runner and the HTTP
//! server, and stop both cleanly on SIGINT/SIGTERM.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gatehouse_domain::password::HashError;
use gatehouse_domain::{Account, AccountServices};
use gatehouse_projections::ProjectionRunner;
use gatehouse_store::Store;
use gatehouse_store::{AggregateStore, CommandExecutor};
use tokio::sync::watch;

use crate::config::{ConfigError, ServeArgs};
use crate::hasher::Argon2Hasher;
use crate::keys::{generate_master_key_hex, KeyError, Keys};
use crate::state::AppState;

/// Why the server could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Settings are wrong together, or a component refused one.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// PostgreSQL needs an explicit master key.
    #[error(
        "GATEHOUSE_MASTER_KEY is required with DATABASE_URL (PostgreSQL). Create one with \
         `gatehouse keygen`, keep it in your secret manager, and pass it as GATEHOUSE_MASTER_KEY."
    )]
    MasterKeyRequired,
    /// The master key is not the one the store was set up with.
    #[error(
        "GATEHOUSE_MASTER_KEY is not the key this store was set up with: identifiers could \
         not be found and personal data could not be unsealed. Start with the original key."
    )]
    MasterKeyMismatch,
    /// The master key is malformed, or no random key could be generated.
    #[error("{0}")]
    Keys(#[from] KeyError),
    /// The Argon2 settings are refused.
    #[error("{0}")]
    Hasher(#[from] HashError),
    /// The embedded store's master key file could not be created or written.
    #[error("cannot {action} {}: {source}", path.display())]
    MasterKeyFile {
        /// `create` (the directory) or `write` (the key file).
        action: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The SMTP URL or the SMS webhook URL is refused.
    #[error("{0}")]
    Sender(String),
    /// The Redis URL for the rate limits is refused.
    #[error("{0}")]
    RateLimitBackend(String),
    /// The store could not be opened or migrated.
    #[error("cannot open the event store: {0}")]
    Store(String),
    /// The read replica is refused (embedded store, or not a copy of the primary's database).
    #[error("cannot use the read replica: {0}")]
    ReadReplica(String),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
}

/// Sends the read routes' queries to `GATEHOUSE_READ_DATABASE_URL` when it is set. A replica
/// that does not answer yet does not stop the start (writes do not need it; read routes answer
/// `unavailable` until it is back, and `/readyz` says so).
async fn with_read_replica(
    store: Store,
    args: &crate::config::StoreArgs,
) -> Result<Store, StartError> {
    let Some(url) = &args.read_database_url else {
        return Ok(store);
    };
    let (store, at_start) = store
        .with_read_replica(url, args.db_max_connections, args.acquire_timeout())
        .await
        .map_err(|e| StartError::ReadReplica(e.to_string()))?;
    match at_start {
        gatehouse_store::ReplicaAtStart::Verified { in_recovery: true } => {
            tracing::info!("read routes read from the replica at GATEHOUSE_READ_DATABASE_URL");
        }
        gatehouse_store::ReplicaAtStart::Verified { in_recovery: false } => tracing::warn!(
            "GATEHOUSE_READ_DATABASE_URL is no standby (pg_is_in_recovery() is false); read \
             routes read from it all the same"
        ),
        gatehouse_store::ReplicaAtStart::Unreachable(why) => tracing::warn!(
            error = %why,
            "the read replica does not answer; read routes answer 503 unavailable until it does"
        ),
    }
    Ok(store)
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let ServeArgs {
        store: store_args,
        http,
        access,
        lockout,
        sessions,
        passwords,
        codes,
        cooldowns,
        delivery: delivery_args,
        limits,
        alerts,
        accounts: account_args,
        streaming,
        ui,
    } = &args;
    if store_args.read_database_url.is_some() && store_args.database_url.is_none() {
        return Err(StartError::ReadReplica(
            "GATEHOUSE_READ_DATABASE_URL needs PostgreSQL (DATABASE_URL): the embedded store has \
             no replicas; unset it"
                .to_string(),
        ));
    }
    let (store, master_hex) = match &store_args.database_url {
        Some(url) => {
            let key = store_args
                .master_key
                .clone()
                .ok_or(StartError::MasterKeyRequired)?;
            let store = Store::connect_postgres_with(
                url,
                store_args.db_max_connections,
                store_args.acquire_timeout(),
            )
            .await
            .map_err(|e| StartError::Store(e.to_string()))?;
            (store, key)
        }
        None => {
            let key = match &store_args.master_key {
                Some(key) => key.clone(),
                None => embedded_master_key(&store_args.data_dir)?,
            };
            let store = Store::open_embedded(&store_args.data_dir)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
            (store, key)
        }
    };
    let store = with_read_replica(store, store_args).await?;
    let keys = Keys::from_master_hex(&master_hex)?;
    store
        .migrate()
        .await
        .map_err(|e| StartError::Store(e.to_string()))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let check = crate::directory::check_master_key(&store, keys.fingerprint(), now_ms)
        .await
        .map_err(|e| StartError::Store(e.to_string()))?;
    if check == crate::directory::KeyCheck::Mismatch {
        return Err(StartError::MasterKeyMismatch);
    }

    let hasher = Argon2Hasher::new(passwords.into(), passwords.concurrency())?;
    let services = AccountServices {
        hasher: Arc::new(hasher),
        lockout: lockout.try_into()?,
        devices: lockout.try_into()?,
        sessions: sessions.try_into()?,
        codes: codes.into(),
        cooldowns: cooldowns.into(),
        contacts: account_args.into(),
    };
    let delivery = delivery(delivery_args, &store_args.data_dir)?;
    let password_policy = passwords.try_into()?;
    let accounts = CommandExecutor::<Account>::new(
        AggregateStore::new(&store, gatehouse_domain::upcast::account_upcasters()),
        services,
    )
    .with_cache_capacity(store_args.aggregate_cache);
    // Background work gets pools of its own: a read-model batch or an outbox round never holds a
    // connection a request waits for (issue #23, item 2).
    let background = store
        .background(store_args.db_background_connections)
        .await
        .map_err(|e| StartError::Store(e.to_string()))?;
    let runner = ProjectionRunner::new(
        background.clone(),
        gatehouse_projections::standard_projections_with(alerts.try_into()?),
    )
    .with_coalesce(store_args.coalesce());
    let state = AppState::new(
        store.clone(),
        accounts,
        keys,
        runner.clone(),
        password_policy,
        http.trusted_proxies.clone(),
        throttle(limits, &store)?,
    )
    .with_protection(limits.into())
    .with_controls(account_args.into())
    .with_relying_party(account_args.try_into()?)
    .with_access(access.try_into()?)
    .with_breach_check(limits.try_into()?)
    .with_sms_budget(limits.try_into()?)
    .with_read_your_writes(store_args.read_your_writes())
    .with_background_store(background.clone())
    .with_ui(
        crate::ui::UiSettings::new(
            ui.ui == crate::config::UiMode::On,
            &delivery_args.public_url(),
        )
        .with_console_idle(ui.console_idle_seconds),
    )
    .with_cors(crate::cors::CorsSettings::new(http.cors_origins.clone()))
    .with_nats(
        Option::<crate::nats::NatsSettings>::try_from(streaming)?
            .map(crate::nats::NatsPublisher::new),
    )
    .with_webhooks((&streaming.webhooks).into());

    let listener = tokio::net::TcpListener::bind(http.listen)
        .await
        .map_err(|cause| StartError::Listen {
            addr: http.listen,
            cause,
        })?;
    let local = listener.local_addr().map_err(|cause| StartError::Listen {
        addr: http.listen,
        cause,
    })?;

    let metrics_listener = match access.metrics_listen {
        Some(addr) => Some((
            addr,
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|cause| StartError::Listen { addr, cause })?,
        )),
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let runner_task = tokio::spawn(runner.run(stop_rx.clone()));
    tracing::info!(email = %delivery.email.describe(), sms = %delivery.sms.describe(), "message delivery");
    let worker_task = tokio::spawn(crate::delivery::worker::run(
        state.clone(),
        delivery,
        std::time::Duration::from_millis(500),
        stop_rx.clone(),
    ));
    // The event stream to NATS JetStream, if configured: one process publishes at a time.
    let nats_task = state.nats().cloned().map(|publisher| {
        tracing::info!(
            stream = %publisher.settings().stream,
            prefix = %publisher.settings().prefix,
            "event stream to NATS JetStream configured"
        );
        // rustls (a `tls://` URL) needs the process's crypto provider.
        crate::install_tls_provider();
        tokio::spawn(publisher.run(
            background.clone(),
            state.runner().progress(),
            stop_rx.clone(),
        ))
    });
    // Webhooks: the feed (one process at a time, under a lease) and the delivery worker.
    let webhook_tasks = [
        tokio::spawn(state.webhooks().clone().run_feed(
            background.clone(),
            state.runner().progress(),
            stop_rx.clone(),
        )),
        tokio::spawn(
            state
                .webhooks()
                .clone()
                .run_worker(state.clone(), stop_rx.clone()),
        ),
    ];
    // Tests and operators wait for this exact line.
    println!("gatehouse listening on {local} (store: {})", store.kind());
    tracing::info!(%local, store = store.kind(), "listening");

    // Metrics on their own address, if asked for: no token there, and nothing else served.
    let metrics_task = match metrics_listener {
        Some((addr, listener)) => {
            let app = crate::app::metrics_router(state.clone())
                .into_make_service_with_connect_info::<SocketAddr>();
            let mut stop = stop_rx.clone();
            tracing::info!(%addr, "serving /metrics on its own address");
            Some(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.changed().await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            }))
        }
        None => None,
    };

    let closing = state.clone();
    let app = crate::app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let mut stop = stop_rx.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = stop.changed() => {}
            }
            closing.close();
        })
        .await;
    let _ = stop_tx.send(true);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    let _ = runner_task.await;
    let _ = worker_task.await;
    if let Some(task) = nats_task {
        let _ = task.await;
    }
    for task in webhook_tasks {
        let _ = task.await;
    }
    background.close().await;
    store.close().await;
    served.map_err(|cause| StartError::Listen { addr: local, cause })
}

/// The message senders: SMTP and the SMS webhook when configured, else development files.
fn delivery(
    args: &crate::config::DeliveryArgs,
    data_dir: &Path,
) -> Result<crate::delivery::worker::Delivery, StartError> {
    use crate::delivery::{email, sms, EmailSender, SmsProvider};
    // One TLS provider for both lettre and reqwest (ring: no C toolchain beyond cc).
    crate::install_tls_provider();
    let outbox = args.outbox(data_dir);
    let email: Arc<dyn EmailSender> = match &args.smtp_url {
        Some(url) => {
            Arc::new(email::SmtpSender::new(url, &args.smtp_from).map_err(StartError::Sender)?)
        }
        None => Arc::new(email::FileEmailSender::new(outbox.clone())),
    };
    let sms: Arc<dyn SmsProvider> = match &args.sms_webhook_url {
        Some(url) => Arc::new(sms::WebhookSms::new(url).map_err(StartError::Sender)?),
        None => Arc::new(sms::FileSms::new(outbox)),
    };
    let geoip = match &args.geoip_db {
        Some(path) => Some(Arc::new(
            crate::delivery::geoip::GeoIp::open(path).map_err(StartError::Sender)?,
        )),
        None => None,
    };
    Ok(crate::delivery::worker::Delivery {
        email,
        sms,
        max_attempts: args.max_attempts(),
        public_url: args.public_url(),
        geoip,
    })
}

/// The embedded store's master key: read from `master.key` in the data directory, or generated
/// and written there (owner-only permissions) on first start.
fn embedded_master_key(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("master.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    std::fs::create_dir_all(dir).map_err(|source| StartError::MasterKeyFile {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    let key = generate_master_key_hex()?;
    write_private(&path, &key).map_err(|source| StartError::MasterKeyFile {
        action: "write",
        path: path.clone(),
        source,
    })?;
    tracing::warn!(path = %path.display(), "generated a master key for the embedded store; back it up with the data");
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The rate limiter: in Redis when `GATEHOUSE_REDIS_URL` is set, else in PostgreSQL (shared by
/// every process), else per process (the embedded store).
fn throttle(
    args: &crate::config::LimitArgs,
    store: &gatehouse_store::Store,
) -> Result<crate::throttle::Throttle, StartError> {
    use crate::throttle::{postgres::PostgresBackend, redis::RedisBackend, Throttle};
    use gatehouse_store::Backend;
    let table = crate::throttle::LimitTable::try_from(args)?;
    let throttle = match (args.redis_url.as_deref(), store.backend()) {
        (Some(url), _) => Throttle::new(
            table,
            Box::new(
                RedisBackend::new(url, &args.redis_prefix).map_err(StartError::RateLimitBackend)?,
            ),
        ),
        (None, Backend::Postgres(pool)) => {
            Throttle::new(table, Box::new(PostgresBackend::new(pool.clone())))
        }
        (None, Backend::Sqlite(_)) => Throttle::local(table),
    };
    tracing::info!(backend = throttle.backend_name(), "rate limits");
    Ok(throttle)
}
