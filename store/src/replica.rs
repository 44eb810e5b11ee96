//! A read pool on a PostgreSQL streaming replica of the primary (`GATEHOUSE_READ_DATABASE_URL`).
//!
//! Only the read-only queries of read-only routes use it ([`Store::reads`]); commands, aggregate
//! loads, the projections runner and every read a decision depends on stay on the primary. A
//! replica replays the primary's WAL in commit order, and a projection's rows commit in the same
//! transaction as its checkpoint, so a checkpoint read *on the replica* that has reached a
//! position proves the replica also shows that projection's rows up to it: read-your-writes
//! compares the primary's head with the replica's checkpoints.
//!
//! The pool connects lazily, so a replica that is down at start does not stop the server (writes
//! go on; read routes answer `unavailable` until it is back). Every new connection checks that it
//! reaches the primary's cluster (its system identifier, which `pg_basebackup` copies) and the
//! same database: a URL pointing anywhere else would serve other data as if it were ours.
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, Connection, Executor};

use crate::{Backend, Store, StoreError};

/// What the replica answered when the store was set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaAtStart {
    /// It is a copy of the primary's database. `in_recovery` is false when it is no standby at
    /// all (the primary itself, or a promoted former standby): allowed, but pointless.
    Verified {
        /// `pg_is_in_recovery()` on it.
        in_recovery: bool,
    },
    /// It did not answer (why): reads answer `unavailable` until it does, and each connection is
    /// checked when it is made.
    Unreachable(String),
}

/// Which cluster and database a connection reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    system: i64,
    database: String,
}

const IDENTITY: &str =
    "select system_identifier, cast(current_database() as text), pg_is_in_recovery()
                          from pg_control_system()";

async fn identity<'c, E>(conn: E) -> Result<(Identity, bool), sqlx::Error>
where
    E: Executor<'c, Database = Any>,
{
    let (system, database, in_recovery): (i64, String, bool) =
        sqlx::query_as(IDENTITY).fetch_one(conn).await?;
    Ok((Identity { system, database }, in_recovery))
}

fn mismatch(primary: &Identity, found: &Identity) -> Option<String> {
    if found.system != primary.system {
        return Some(format!(
            "GATEHOUSE_READ_DATABASE_URL reaches another PostgreSQL cluster (system identifier {}, \
             the primary's is {}): it must be a streaming replica of the primary (pg_basebackup)",
            found.system, primary.system
        ));
    }
    if found.database != primary.database {
        return Some(format!(
            "GATEHOUSE_READ_DATABASE_URL names database '{}', DATABASE_URL names '{}': they must \
             name the same database",
            found.database, primary.database
        ));
    }
    None
}

impl Store {
    /// Sends the read-only queries of read-only routes ([`Store::reads`]) to the PostgreSQL
    /// streaming replica at `url`, with its own pool of `max_connections` and the same bound on
    /// waiting for a connection as the primary's. Fails when the store is embedded, or when the
    /// replica answers and is not a copy of the primary's database; a replica that does not
    /// answer yet is accepted ([`ReplicaAtStart::Unreachable`]).
    pub async fn with_read_replica(
        mut self,
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<(Self, ReplicaAtStart), StoreError> {
        if !matches!(self.backend, Backend::Postgres(_)) {
            return Err(StoreError::ReadReplica(
                "GATEHOUSE_READ_DATABASE_URL needs PostgreSQL (DATABASE_URL): the embedded store \
                 has no replicas"
                    .to_string(),
            ));
        }
        let (primary, _) = identity(&self.any).await?;
        let at_start =
            match tokio::time::timeout(acquire_timeout, AnyConnection::connect(url)).await {
                Ok(Ok(mut conn)) => {
                    let (found, in_recovery) = identity(&mut conn).await?;
                    let _ = conn.close().await;
                    if let Some(why) = mismatch(&primary, &found) {
                        return Err(StoreError::ReadReplica(why));
                    }
                    ReplicaAtStart::Verified { in_recovery }
                }
                Ok(Err(e)) => ReplicaAtStart::Unreachable(e.to_string()),
                Err(_) => ReplicaAtStart::Unreachable(format!(
                    "no answer within {} ms",
                    acquire_timeout.as_millis()
                )),
            };
        let reads = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _| {
                let primary = primary.clone();
                Box::pin(async move {
                    let (found, _) = identity(&mut *conn).await?;
                    match mismatch(&primary, &found) {
                        Some(why) => Err(sqlx::Error::Configuration(why.into())),
                        None => Ok(()),
                    }
                })
            })
            .connect_lazy(url)?;
        self.reads = Some(reads);
        Ok((self, at_start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_replica_identity_must_match_cluster_and_database() {
        let primary = Identity {
            system: 7,
            database: "gatehouse".to_string(),
        };
        assert_eq!(mismatch(&primary, &primary.clone()), None);
        let other_cluster = Identity {
            system: 8,
            ..primary.clone()
        };
        assert!(mismatch(&primary, &other_cluster)
            .is_some_and(|why| why.contains("another PostgreSQL cluster")));
        let other_database = Identity {
            database: "postgres".to_string(),
            ..primary.clone()
        };
        assert!(
            mismatch(&primary, &other_database).is_some_and(|why| why.contains("same database"))
        );
    }
}
