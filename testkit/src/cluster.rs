//! A throwaway PostgreSQL cluster of a test's own, on a free port, that the test can stop and
//! start (the shared server under test must never be stopped): the installed `initdb` and
//! `pg_ctl`, found as `scripts/test` finds them, run as user `postgres` when the test runs as
//! root (initdb refuses root). Stopped (`-m immediate`) and removed when dropped. A second one
//! can be made a streaming replica of it ([`Cluster::replica`]).
use std::path::{Path, PathBuf};
use std::process::Command;

/// A cluster this process started.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: on `PATH`, else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut installed: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    installed.sort();
    installed.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Cluster {
    /// Creates and starts a cluster. `Err` says why it cannot (no PostgreSQL binaries, root
    /// without a `postgres` user, initdb failing), for the caller to skip with.
    pub fn start() -> Result<Self, String> {
        let bin = bin_dir().ok_or("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")?;
        let cluster = Self::empty(bin, is_root())?;
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )?;
        cluster.start_again()?;
        Ok(cluster)
    }

    /// A streaming replica (hot standby) of this running cluster, on another free port: a copy
    /// made with `pg_basebackup -R -X stream` that replays this cluster's WAL as it comes.
    /// initdb's defaults allow it as they are (`wal_level=replica`, WAL senders, and a `trust`
    /// line for local replication connections in `pg_hba.conf`). `Err` says why it cannot (no
    /// `pg_basebackup`, the copy failing), for the caller to skip with.
    pub fn replica(&self) -> Result<Self, String> {
        let basebackup = self
            .tool("pg_basebackup")
            .ok_or("no pg_basebackup beside initdb")?;
        let replica = Self::empty(self.bin.clone(), self.as_postgres)?;
        let data = replica.data();
        let port = self.port.to_string();
        replica.run_program(
            &basebackup,
            &[
                "-D",
                path_str(&data)?,
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
            ],
        )?;
        replica.start_again()?;
        Ok(replica)
    }

    /// A fresh directory (owned by `postgres` when running as root) and a free port.
    fn empty(bin: PathBuf, as_postgres: bool) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-cluster-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let cluster = Self {
            bin,
            dir,
            port: free_port()?,
            as_postgres,
        };
        if as_postgres {
            let chown = Command::new("chown")
                .arg("postgres")
                .arg(&cluster.dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !chown.success() {
                return Err("running as root without a 'postgres' user".to_string());
            }
        }
        Ok(cluster)
    }

    /// `name` beside `initdb`: in the same directory, else beside the file it links to (PATH
    /// may hold links to only some of the tools).
    fn tool(&self, name: &str) -> Option<PathBuf> {
        let here = self.bin.join(name);
        if here.is_file() {
            return Some(here);
        }
        let real = std::fs::canonicalize(self.bin.join("initdb")).ok()?;
        let beside = real.parent()?.join(name);
        beside.is_file().then_some(beside)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the (stopped) cluster and waits until it accepts connections.
    pub fn start_again(&self) -> Result<(), String> {
        let data = self.data();
        let log = self.dir.join("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            path_str(&self.dir)?
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-w",
                "-o",
                &options,
                "start",
            ],
        )
    }

    /// Stops the cluster: `mode` is `fast` (clients disconnected, a clean shutdown) or
    /// `immediate` (like a crash: recovery from the WAL at the next start).
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-m", mode, "-w", "stop"],
        )
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        self.run_program(&self.bin.join(tool), args)
    }

    fn run_program(&self, program: &Path, args: &[&str]) -> Result<(), String> {
        let tool = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut cmd = if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
