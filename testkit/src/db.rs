//! Databases on the PostgreSQL server under test: a fresh migrated database per test (cloned from
//! a template migrated once per run), or an empty scratch database that a benchmark's server
//! migrates itself and that is dropped after the run.
use gatehouse_store::Store;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

const TEMPLATE: &str = "gatehouse_test_template";

/// The prefix of this run's database names: `gh_test` unless `TEST_DB_NAMESPACE` (letters,
/// digits, `_`) sets another, so that test runs of several worktrees on one shared PostgreSQL
/// neither drop each other's databases nor clone each other's template (whose migrations may
/// differ).
fn namespace() -> String {
    std::env::var("TEST_DB_NAMESPACE")
        .ok()
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 30
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .map(|n| n.to_ascii_lowercase())
        .unwrap_or_else(|| "gh_test".to_string())
}

/// The template of this run's databases.
fn template() -> String {
    match namespace().as_str() {
        "gh_test" => TEMPLATE.to_string(),
        ns => format!("{ns}_template"),
    }
}

/// Where the tests find PostgreSQL.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The admin URL with its database name replaced (query parameters such as `sslmode` kept); a
/// URL naming no database gets one.
pub fn database_url(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    match base.rfind('/') {
        Some(i) if !base[..i].ends_with('/') => format!("{}/{db}{query}", &base[..i]),
        _ => format!("{base}/{db}{query}"),
    }
}

static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {} ({e}); run the suite through scripts/test",
                admin_url()
            )
        })
}

/// Builds the migrated template once per test run (and drops databases left by earlier runs).
async fn ensure_template() {
    TEMPLATE_READY
        .get_or_init(|| async {
            let mut conn = admin().await;
            sqlx::query("select pg_advisory_lock(4242)")
                .execute(&mut conn)
                .await
                .unwrap();
            let stale: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where datname like $1 || '\\_%' or datname = $2",
            )
            .bind(namespace())
            .bind(template())
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for db in stale {
                sqlx::query(&format!("drop database if exists {db} with (force)"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let template = template();
            sqlx::query(&format!("create database {template}"))
                .execute(&mut conn)
                .await
                .unwrap();
            let store = Store::connect_postgres(&database_url(&admin_url(), &template), 2)
                .await
                .unwrap();
            store.migrate().await.unwrap();
            store.close().await;
            sqlx::query("select pg_advisory_unlock(4242)")
                .execute(&mut conn)
                .await
                .unwrap();
        })
        .await;
}

/// A fresh, migrated database for one test.
pub struct TestDb {
    /// Its URL.
    pub url: String,
}

impl TestDb {
    /// Clones the template into a new database.
    pub async fn new() -> Self {
        ensure_template().await;
        let name = format!("{}_{}", namespace(), uuid::Uuid::new_v4().simple());
        let mut conn = admin().await;
        sqlx::query(&format!("create database {name} template {}", template()))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            url: database_url(&admin_url(), &name),
        }
    }

    /// A connected store on this database.
    pub async fn store(&self) -> Store {
        Store::connect_postgres(&self.url, 8).await.unwrap()
    }

    /// A plain pool for assertions.
    pub async fn pool(&self) -> sqlx::PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

/// An empty database for one benchmark run (its server migrates it), dropped by [`Self::drop`].
/// Errors are messages: a benchmark reports them and exits.
pub struct ScratchDb {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl ScratchDb {
    /// Creates `gatehouse_bench_<random>` on the server of `admin_url`.
    pub async fn create(admin: &sqlx::PgPool, admin_url: &str) -> Result<Self, String> {
        let name = format!("gatehouse_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("create database {name}"))
            .execute(admin)
            .await
            .map_err(|e| format!("create database {name}: {e}"))?;
        let url = database_url(admin_url, &name);
        Ok(Self { name, url })
    }

    /// Drops it, closing its connections (best effort: the run is over).
    pub async fn drop(&self, admin: &sqlx::PgPool) {
        let _ = sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.name
        ))
        .execute(admin)
        .await;
    }

    /// A pool of `connections` on it.
    pub async fn pool(&self, connections: u32) -> Result<sqlx::PgPool, String> {
        PgPoolOptions::new()
            .max_connections(connections)
            .connect(&self.url)
            .await
            .map_err(|e| format!("connect to {}: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn test_database_url_replaces_the_name_and_keeps_the_query() {
        assert_eq!(
            database_url("postgres://u@h:5432/postgres?sslmode=require", "x"),
            "postgres://u@h:5432/x?sslmode=require"
        );
        assert_eq!(
            database_url("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
