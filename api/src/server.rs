//! `gatehouse serve`: open the store, apply migrations, start the projections runner and the HTTP
//! server, and stop both cleanly on SIGINT/SIGTERM.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use gatehouse_domain::{Account, AccountServices};
use gatehouse_projections::ProjectionRunner;
use gatehouse_store::Store;
use gatehouse_store::{AggregateStore, CommandExecutor};
use tokio::sync::watch;

use crate::config::ServeArgs;
use crate::hasher::Argon2Hasher;
use crate::keys::{generate_master_key_hex, Keys};
use crate::state::AppState;

/// Why the server could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened or migrated.
    #[error("cannot open the event store: {0}")]
    Store(String),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {cause}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
}

/// Runs the server until a shutdown signal.
pub async fn serve(args: ServeArgs) -> Result<(), StartError> {
    let (store, master_hex) = match &args.database_url {
        Some(url) => {
            let key = args.master_key.clone().ok_or_else(|| {
                StartError::Config(
                    "GATEHOUSE_MASTER_KEY is required with DATABASE_URL (PostgreSQL). Create one with \
                     `gatehouse keygen`, keep it in your secret manager, and pass it as GATEHOUSE_MASTER_KEY."
                        .into(),
                )
            })?;
            let store = Store::connect_postgres(url, args.db_max_connections)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
            (store, key)
        }
        None => {
            let key = match &args.master_key {
                Some(key) => key.clone(),
                None => embedded_master_key(&args.data_dir)?,
            };
            let store = Store::open_embedded(&args.data_dir)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
            (store, key)
        }
    };
    let keys = Keys::from_master_hex(&master_hex).map_err(|e| StartError::Config(e.to_string()))?;
    store
        .migrate()
        .await
        .map_err(|e| StartError::Store(e.to_string()))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let check = crate::directory::check_master_key(&store, keys.fingerprint(), now_ms)
        .await
        .map_err(|e| StartError::Store(e.to_string()))?;
    if check == crate::directory::KeyCheck::Mismatch {
        return Err(StartError::Config(
            "GATEHOUSE_MASTER_KEY is not the key this store was set up with: identifiers could \
             not be found and personal data could not be unsealed. Start with the original key."
                .into(),
        ));
    }

    let concurrency = args.hash_concurrency.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let hasher = Argon2Hasher::new(args.argon2(), concurrency)
        .map_err(|e| StartError::Config(e.to_string()))?;
    let services = AccountServices {
        hasher: Arc::new(hasher),
        lockout: args
            .lockout()
            .map_err(|e| StartError::Config(e.to_string()))?,
        devices: args
            .devices()
            .map_err(|e| StartError::Config(e.to_string()))?,
        sessions: args
            .sessions()
            .map_err(|e| StartError::Config(e.to_string()))?,
        codes: args
            .codes()
            .map_err(|e| StartError::Config(e.to_string()))?,
        cooldowns: args
            .cooldowns()
            .map_err(|e| StartError::Config(e.to_string()))?,
        contacts: args
            .contacts()
            .map_err(|e| StartError::Config(e.to_string()))?,
    };
    let delivery = delivery(&args)?;
    let password_policy = args
        .password_policy()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let accounts = CommandExecutor::<Account>::new(
        AggregateStore::new(&store, gatehouse_domain::upcast::account_upcasters()),
        services,
    );
    let alert_policy = args
        .alert_policy()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let runner = ProjectionRunner::new(
        store.clone(),
        gatehouse_projections::standard_projections_with(alert_policy),
    )
    .with_coalesce(std::time::Duration::from_millis(
        args.projection_coalesce_ms,
    ));
    let state = AppState::new(
        store.clone(),
        accounts,
        keys,
        runner.clone(),
        password_policy,
        args.trusted_proxies.clone(),
        throttle(&args, &store)?,
    )
    .with_protection(crate::protection::ProtectionSettings {
        per_minute: args.flagged_logins_per_minute,
        flag_for: chrono::Duration::seconds(args.flagged_seconds.max(1)),
    })
    .with_controls(
        args.controls()
            .map_err(|e| StartError::Config(e.to_string()))?,
    )
    .with_relying_party(
        args.relying_party()
            .map_err(|e| StartError::Config(e.to_string()))?,
    )
    .with_access(
        args.access()
            .map_err(|e| StartError::Config(e.to_string()))?,
    )
    .with_breach_check(
        args.breach_check()
            .map_err(|e| StartError::Config(e.to_string()))?,
    )
    .with_sms_budget(
        args.sms_budget()
            .map_err(|e| StartError::Config(e.to_string()))?,
    );

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|cause| StartError::Listen {
            addr: args.listen,
            cause,
        })?;
    let local = listener.local_addr().map_err(|cause| StartError::Listen {
        addr: args.listen,
        cause,
    })?;

    let metrics_listener = match args.metrics_listen {
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
    store.close().await;
    served.map_err(|cause| StartError::Listen { addr: local, cause })
}

/// The message senders: SMTP and the SMS webhook when configured, else development files.
fn delivery(args: &ServeArgs) -> Result<crate::delivery::worker::Delivery, StartError> {
    use crate::delivery::{email, sms, EmailSender, SmsProvider};
    // One TLS provider for both lettre and reqwest (ring: no C toolchain beyond cc).
    crate::install_tls_provider();
    let outbox = args
        .dev_outbox_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("outbox"));
    let email: Arc<dyn EmailSender> = match &args.smtp_url {
        Some(url) => {
            Arc::new(email::SmtpSender::new(url, &args.smtp_from).map_err(StartError::Config)?)
        }
        None => Arc::new(email::FileEmailSender::new(outbox.clone())),
    };
    let sms: Arc<dyn SmsProvider> = match &args.sms_webhook_url {
        Some(url) => Arc::new(sms::WebhookSms::new(url).map_err(StartError::Config)?),
        None => Arc::new(sms::FileSms::new(outbox)),
    };
    Ok(crate::delivery::worker::Delivery {
        email,
        sms,
        max_attempts: args.delivery_max_attempts.max(1),
    })
}

/// The embedded store's master key: read from `master.key` in the data directory, or generated
/// and written there (owner-only permissions) on first start.
fn embedded_master_key(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("master.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| StartError::Config(format!("cannot create {}: {e}", dir.display())))?;
    let key = generate_master_key_hex().map_err(|e| StartError::Config(e.to_string()))?;
    write_private(&path, &key)
        .map_err(|e| StartError::Config(format!("cannot write {}: {e}", path.display())))?;
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
    args: &ServeArgs,
    store: &gatehouse_store::Store,
) -> Result<crate::throttle::Throttle, StartError> {
    use crate::throttle::{postgres::PostgresBackend, redis::RedisBackend, Throttle};
    use gatehouse_store::Backend;
    let table = args
        .rate_limits()
        .map_err(|e| StartError::Config(e.to_string()))?;
    let throttle = match (args.redis_url.as_deref(), store.backend()) {
        (Some(url), _) => Throttle::new(
            table,
            Box::new(RedisBackend::new(url, &args.redis_prefix).map_err(StartError::Config)?),
        ),
        (None, Backend::Postgres(pool)) => {
            Throttle::new(table, Box::new(PostgresBackend::new(pool.clone())))
        }
        (None, Backend::Sqlite(_)) => Throttle::local(table),
    };
    tracing::info!(backend = throttle.backend_name(), "rate limits");
    Ok(throttle)
}
