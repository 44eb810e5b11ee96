//! `gatehouse-bench enumeration`: the timing check of issue #17. For each route that takes an
//! identifier from a stranger, the latency of requests naming a registered account ("known")
//! against requests naming an address never registered ("unknown"), and whether the answers
//! themselves differ (status codes, body keys, and any field that is fixed within each group but
//! not the same across them, such as `steps_total` or `channel`).
//!
//! One server on a fresh PostgreSQL database, at the default Argon2 parameters, with every rate
//! limit raised so that one client on 127.0.0.1 is never throttled. The known identifiers are a
//! pool of accounts with a verified email that have each signed in once (as a real user has, so
//! the server's cache of signed-in identifiers is warm for them); requests rotate over the pool
//! so that no account reaches a per-account limit. Requests are sequential (one client: latency,
//! not throughput) and interleaved known/unknown in the order K U U K K U U K …, so that drift,
//! and any background work one request leaves behind (a code to deliver, a projection to
//! apply), lands on both groups alike. The figure is not an assertion: a ratio above 1.10 is
//! reported, not failed (`--strict` fails on differing answers only, never on timing).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};

use gatehouse_testkit::mail::first_code;

use crate::suite::{Account, ScratchDb, Server, Target};
use crate::PASSWORD;

/// Enumeration timing settings.
#[derive(Debug, Clone, Parser)]
#[command(name = "gatehouse-bench enumeration")]
struct EnumArgs {
    #[command(flatten)]
    target: Target,
    /// Measured requests per route and group (known, unknown).
    #[arg(long, default_value_t = 200)]
    requests: usize,
    /// Unmeasured requests per route and group before the measured ones.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Registered accounts the known requests rotate over.
    #[arg(long, default_value_t = 50)]
    accounts: usize,
    /// Routes to run, comma-separated: login, forgot, unlock, lost-2fa, signup (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Ratio of the slower median to the faster one that counts as a difference.
    #[arg(long, default_value_t = 1.10)]
    limit: f64,
    /// Print the JSON summary on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// A few seconds in all: 10 requests per group, 5 accounts (figures printed, meaningless).
    #[arg(long)]
    smoke: bool,
    /// Do not sign the known accounts in before measuring (the server's cache of signed-in
    /// identifiers stays cold for them, as for an account that has never signed in).
    #[arg(long)]
    no_sign_in: bool,
    /// Exit with status 1 when the answers differ (status codes, body keys, fixed fields);
    /// timing never fails the run.
    #[arg(long)]
    strict: bool,
}

impl EnumArgs {
    fn smoke(mut self) -> Self {
        if self.smoke {
            self.requests = self.requests.min(10);
            self.warmup = self.warmup.min(2);
            self.accounts = self.accounts.min(5);
        }
        self.accounts = self.accounts.max(1);
        self
    }
}

/// The routes measured: name, path.
const ROUTES: [(&str, &str); 5] = [
    ("login", "/v1/login"),
    ("forgot", "/v1/password/forgot"),
    ("unlock", "/v1/unlock/request"),
    ("lost-2fa", "/v1/recovery/lost-2fa"),
    ("signup", "/v1/accounts"),
];

/// Rate-limited routes by the names of their settings
/// (`GATEHOUSE_RATE_LIMIT_<ROUTE>_PER_<IP|NETWORK|IDENTIFIER>_PER_MINUTE`).
const LIMITED_ROUTES: [&str; 9] = [
    "SIGNUP",
    "LOGIN",
    "LOGIN_MFA",
    "FORGOT",
    "RESET",
    "UNLOCK",
    "VERIFY",
    "LOST_2FA",
    "RESEND",
];

/// A wrong password for the known sign-ins (and any password for the unknown ones).
const WRONG_PASSWORD: &str = "not-the-benchmark-password-42";

/// Limits far above what one sequential client reaches.
const GENEROUS: &str = "1000000";

/// The server's settings: production paths and the default Argon2 parameters, with the limits a
/// single client would otherwise hit raised out of the way.
fn server_env(outbox: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        (
            "GATEHOUSE_DEV_OUTBOX_DIR".into(),
            outbox.display().to_string(),
        ),
        // The defaults, set explicitly so that a GATEHOUSE_ARGON2_* in the caller's environment
        // does not change the figures.
        ("GATEHOUSE_ARGON2_MEMORY_KIB".into(), "19456".into()),
        ("GATEHOUSE_ARGON2_ITERATIONS".into(), "2".into()),
        ("GATEHOUSE_ARGON2_PARALLELISM".into(), "1".into()),
        ("GATEHOUSE_REQUIRE_VERIFIED_CONTACT".into(), "false".into()),
        (
            "GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE".into(),
            GENEROUS.into(),
        ),
        (
            "GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE".into(),
            GENEROUS.into(),
        ),
        ("GATEHOUSE_CODE_MAX_PER_HOUR".into(), GENEROUS.into()),
        ("GATEHOUSE_LOCKOUT_THRESHOLD".into(), GENEROUS.into()),
        // Every request comes from 127.0.0.1 and fails against many identifiers: no stricter
        // sign-in limit from credential-stuffing alerts.
        ("GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE".into(), "0".into()),
    ];
    for route in LIMITED_ROUTES {
        for per in ["IP", "NETWORK", "IDENTIFIER"] {
            env.push((
                format!("GATEHOUSE_RATE_LIMIT_{route}_PER_{per}_PER_MINUTE"),
                GENEROUS.into(),
            ));
        }
    }
    env
}

/// Runs the check; returns the process exit status.
pub async fn main(argv: Vec<String>) -> i32 {
    let args = EnumArgs::parse_from(argv).smoke();
    let names: Vec<&str> = ROUTES.iter().map(|(n, _)| *n).collect();
    for route in &args.only {
        if !names.contains(&route.as_str()) {
            eprintln!(
                "gatehouse-bench enumeration: unknown route {route:?} ({})",
                names.join(", ")
            );
            return 2;
        }
    }
    let (server, admin) = match crate::suite::prepare("enumeration", &args.target).await {
        Ok(ready) => ready,
        Err(status) => return status,
    };
    let db = match ScratchDb::create(&admin, &args.target.database_url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("gatehouse-bench enumeration: {e}");
            return 2;
        }
    };
    let outbox = match crate::suite::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            db.drop(&admin).await;
            eprintln!("gatehouse-bench enumeration: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    let result = run(&args, &server, &db, &outbox).await;
    db.drop(&admin).await;
    let _ = std::fs::remove_dir_all(&outbox);
    let results = match result {
        Ok(results) => results,
        Err(e) => {
            eprintln!("gatehouse-bench enumeration: {e}");
            return 2;
        }
    };
    let table = table(&args, &results);
    if args.json {
        eprint!("{table}");
        println!(
            "{}",
            serde_json::to_string_pretty(&summary(&args, &results)).unwrap_or_default()
        );
    } else {
        print!("{table}");
    }
    eprintln!(
        "enumeration check took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if args.strict && results.iter().any(|r| !r.same_answers()) {
        return 1;
    }
    0
}

async fn run(
    args: &EnumArgs,
    bin: &Path,
    db: &ScratchDb,
    outbox: &Path,
) -> Result<Vec<RouteResult>, String> {
    let env = server_env(outbox);
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let server = Server::start_bench(bin, &db.url, &env).await?;
    let result = measure(args, &server, outbox).await;
    server.kill().await;
    result
}

async fn measure(
    args: &EnumArgs,
    server: &Server,
    outbox: &Path,
) -> Result<Vec<RouteResult>, String> {
    let http = crate::suite::http_client()?;
    let base = server.base.as_str();
    // A per-run tag keeps the unknown addresses unknown should databases ever be reused.
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();

    eprintln!(
        "registering, verifying{} {} accounts…",
        if args.no_sign_in {
            ""
        } else {
            " and signing in"
        },
        args.accounts
    );
    let emails = (0..args.accounts)
        .map(|i| format!("known-{run}-{i:05}@example.com"))
        .collect();
    let pool = crate::suite::register_many(&http, base, emails, 2).await?;
    verify_all(&http, base, &pool, outbox).await?;
    for account in pool.iter().filter(|_| !args.no_sign_in) {
        let (status, body) = crate::suite::login(&http, base, &account.email, PASSWORD).await?;
        if status != 200 {
            return Err(format!(
                "sign-in of {} after verification: HTTP {status} {body}",
                account.email
            ));
        }
    }

    let mut results = Vec::new();
    for (name, path) in ROUTES {
        if !args.only.is_empty() && !args.only.iter().any(|r| r == name) {
            continue;
        }
        eprintln!(
            "{name}: {} + {} requests (after {} + {} warm-up)…",
            args.requests, args.requests, args.warmup, args.warmup
        );
        let mut samples = Samples::default();
        let total = args.warmup + args.requests;
        let mut known_i = 0usize;
        let mut unknown_i = 0usize;
        // K U U K K U U K …: each group follows each group equally often.
        for step in 0..2 * total {
            let known = matches!(step % 4, 0 | 3);
            let identifier = if known {
                known_i += 1;
                pool[(known_i - 1) % pool.len()].email.clone()
            } else {
                unknown_i += 1;
                format!("nobody-{run}-{name}-{:05}@example.com", unknown_i - 1)
            };
            let measured = if known { known_i } else { unknown_i } > args.warmup;
            let body = request_body(name, &identifier);
            let sent = Instant::now();
            let answer = http.post(format!("{base}{path}")).json(&body).send().await;
            let answer = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    r.bytes().await.map(|b| (status, b))
                }
                Err(e) => Err(e),
            };
            let ms = sent.elapsed().as_secs_f64() * 1000.0;
            if !measured {
                continue;
            }
            let group = if known {
                &mut samples.known
            } else {
                &mut samples.unknown
            };
            match answer {
                Ok((status, bytes)) => {
                    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    group.record(ms, status, &value);
                }
                Err(e) => {
                    if group.failed == 0 {
                        eprintln!("  {name}: request failed: {e}");
                    }
                    group.failed += 1;
                }
            }
        }
        results.push(RouteResult::new(name, path, samples, args.limit));
    }
    Ok(results)
}

fn request_body(route: &str, identifier: &str) -> Value {
    match route {
        "login" => json!({"identifier": identifier, "password": WRONG_PASSWORD}),
        "signup" => json!({"email": identifier, "password": PASSWORD}),
        _ => json!({"identifier": identifier}),
    }
}

/// Verifies each account's email with the code the server wrote to the development outbox.
async fn verify_all(
    http: &reqwest::Client,
    base: &str,
    pool: &[Account],
    outbox: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending: Vec<&Account> = pool.iter().collect();
    while !pending.is_empty() {
        let codes = outbox_codes(outbox);
        let mut still = Vec::new();
        for account in pending {
            let mut verified = false;
            for code in codes.get(&account.email).into_iter().flatten() {
                let r = http
                    .post(format!("{base}/v1/verify"))
                    .json(&json!({"flow_id": account.flow, "code": code}))
                    .send()
                    .await
                    .map_err(|e| format!("verify {}: {e}", account.email))?;
                if r.status().is_success() {
                    verified = true;
                    break;
                }
            }
            if !verified {
                still.push(account);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} accounts got no usable verification code in the outbox {} within 120 s",
                pending.len(),
                pool.len(),
                outbox.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Six-digit codes in the development outbox, by recipient, in file-name order.
fn outbox_codes(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut codes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        if file.extension().and_then(|e| e.to_str()) != Some("eml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Some(to) = text.lines().find_map(|l| l.strip_prefix("To: ")) else {
            continue;
        };
        let body = text.split_once("\n\n").map_or("", |(_, b)| b);
        if let Some(code) = first_code(body) {
            codes.entry(to.trim().to_string()).or_default().push(code);
        }
    }
    codes
}

// ---------------------------------------------------------------------------------------------
// Samples and the comparison of answers

#[derive(Default)]
struct Samples {
    known: Group,
    unknown: Group,
}

/// What one group of requests got.
#[derive(Default)]
struct Group {
    ms: Vec<f64>,
    failed: usize,
    statuses: BTreeMap<u16, usize>,
    /// Distinct body shapes (sorted leaf paths with their JSON types).
    shapes: BTreeSet<String>,
    /// Values seen at each leaf path, ids, tokens and timestamps included.
    values: BTreeMap<String, BTreeSet<String>>,
}

impl Group {
    fn record(&mut self, ms: f64, status: u16, body: &Value) {
        self.ms.push(ms);
        *self.statuses.entry(status).or_default() += 1;
        let mut leaves = BTreeMap::new();
        flatten("", body, &mut leaves);
        self.shapes.insert(
            leaves
                .iter()
                .map(|(path, (kind, _))| format!("{path}:{kind}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        for (path, (_, value)) in leaves {
            self.values.entry(path).or_default().insert(value);
        }
    }
}

/// Leaf paths of a JSON value with their type and value (array items share the path `[]`).
fn flatten(path: &str, value: &Value, out: &mut BTreeMap<String, (&'static str, String)>) {
    match value {
        Value::Object(map) => {
            if map.is_empty() {
                out.insert(path.to_string(), ("object", "{}".into()));
            }
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.insert(format!("{path}[]"), ("array", "[]".into()));
            }
            for item in items {
                flatten(&format!("{path}[]"), item, out);
            }
        }
        Value::String(s) => {
            out.insert(path.to_string(), ("string", s.clone()));
        }
        Value::Number(n) => {
            out.insert(path.to_string(), ("number", n.to_string()));
        }
        Value::Bool(b) => {
            out.insert(path.to_string(), ("bool", b.to_string()));
        }
        Value::Null => {
            out.insert(path.to_string(), ("null", "null".into()));
        }
    }
}

/// Fields whose values are per-request by design and never compared.
fn volatile(path: &str) -> bool {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    leaf.ends_with("_id") || leaf.ends_with("_at") || leaf.contains("token") || leaf == "id"
}

/// Fields that hold one value across every answer of each group, but not the same one in both:
/// an oracle even when status and keys agree (`steps_total`, `channel`, an error code …).
fn differing_fields(known: &Group, unknown: &Group) -> Vec<String> {
    known
        .values
        .iter()
        .filter(|(path, _)| !volatile(path))
        .filter_map(|(path, k)| {
            let u = unknown.values.get(path)?;
            (k.len() == 1 && u.len() == 1 && k != u).then(|| {
                format!(
                    "{path}: {} vs {}",
                    k.iter().next().map(String::as_str).unwrap_or_default(),
                    u.iter().next().map(String::as_str).unwrap_or_default()
                )
            })
        })
        .collect()
}

struct RouteResult {
    name: &'static str,
    path: &'static str,
    known_ms: f64,
    unknown_ms: f64,
    known_p90_ms: f64,
    unknown_p90_ms: f64,
    ratio: f64,
    within: bool,
    known: Group,
    unknown: Group,
    same_statuses: bool,
    same_shape: bool,
    differing: Vec<String>,
}

impl RouteResult {
    fn new(name: &'static str, path: &'static str, samples: Samples, limit: f64) -> Self {
        let Samples { known, unknown } = samples;
        let known_ms = crate::median(&known.ms);
        let unknown_ms = crate::median(&unknown.ms);
        let ratio = if known_ms > 0.0 && unknown_ms > 0.0 {
            known_ms.max(unknown_ms) / known_ms.min(unknown_ms)
        } else {
            f64::NAN
        };
        let same_statuses =
            known.statuses.keys().eq(unknown.statuses.keys()) && known.statuses.len() == 1;
        let same_shape = known.shapes == unknown.shapes;
        let differing = differing_fields(&known, &unknown);
        Self {
            name,
            path,
            known_ms,
            unknown_ms,
            known_p90_ms: percentile(&known.ms, 0.9),
            unknown_p90_ms: percentile(&unknown.ms, 0.9),
            ratio,
            within: ratio <= limit,
            known,
            unknown,
            same_statuses,
            same_shape,
            differing,
        }
    }

    fn same_answers(&self) -> bool {
        self.same_statuses
            && self.same_shape
            && self.differing.is_empty()
            && self.known.failed == 0
            && self.unknown.failed == 0
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn statuses(counts: &BTreeMap<u16, usize>) -> String {
    counts
        .iter()
        .map(|(s, n)| {
            if counts.len() == 1 {
                s.to_string()
            } else {
                format!("{s}×{n}")
            }
        })
        .collect::<Vec<_>>()
        .join("+")
}

fn machine_note() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores ({cpu})")
}

fn table(args: &EnumArgs, results: &[RouteResult]) -> String {
    let mut out = format!(
        "enumeration timing: {} known + {} unknown requests per route (after {} + {} warm-up), sequential, \
         order K U U K; {} known accounts (verified{}); argon2id m=19456 KiB t=2 p=1; {}\n",
        args.requests,
        args.requests,
        args.warmup,
        args.warmup,
        args.accounts,
        if args.no_sign_in { ", never signed in" } else { ", signed in once" },
        machine_note()
    );
    out.push_str(
        "| route | known median ms | unknown median ms | ratio | ≤ limit | status known / unknown | same answers |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in results {
        let mut answers = if r.same_answers() {
            "yes".to_string()
        } else {
            let mut why = Vec::new();
            if !r.same_statuses {
                why.push("status codes differ".to_string());
            }
            if !r.same_shape {
                why.push("body keys differ".to_string());
            }
            why.extend(r.differing.iter().cloned());
            if r.known.failed + r.unknown.failed > 0 {
                why.push(format!(
                    "{} requests failed",
                    r.known.failed + r.unknown.failed
                ));
            }
            format!("no: {}", why.join("; "))
        };
        answers = answers.replace('|', "\\|");
        out.push_str(&format!(
            "| `POST {}` ({}) | {:.1} | {:.1} | {:.3} | {} | {} / {} | {} |\n",
            r.path,
            r.name,
            r.known_ms,
            r.unknown_ms,
            r.ratio,
            if r.within { "yes" } else { "**no**" },
            statuses(&r.known.statuses),
            statuses(&r.unknown.statuses),
            answers
        ));
    }
    let over: Vec<&str> = results
        .iter()
        .filter(|r| !r.within)
        .map(|r| r.name)
        .collect();
    if over.is_empty() {
        out.push_str(&format!(
            "every route within {:.0} % (ratio ≤ {:.2})\n",
            (args.limit - 1.0) * 100.0,
            args.limit
        ));
    } else {
        out.push_str(&format!(
            "ratio above {:.2}: {}\n",
            args.limit,
            over.join(", ")
        ));
    }
    out
}

fn summary(args: &EnumArgs, results: &[RouteResult]) -> Value {
    let counts = |c: &BTreeMap<u16, usize>| -> Value {
        c.iter()
            .map(|(s, n)| (s.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "requests_per_group": args.requests,
        "warmup_per_group": args.warmup,
        "accounts": args.accounts,
        "known_signed_in": !args.no_sign_in,
        "order": "K U U K",
        "limit": args.limit,
        "machine": machine_note(),
        "argon2": {"memory_kib": 19456, "iterations": 2, "parallelism": 1},
        "routes": results.iter().map(|r| json!({
            "route": r.name,
            "method": "POST",
            "path": r.path,
            "known_median_ms": r.known_ms,
            "unknown_median_ms": r.unknown_ms,
            "known_p90_ms": r.known_p90_ms,
            "unknown_p90_ms": r.unknown_p90_ms,
            "ratio": r.ratio,
            "within_limit": r.within,
            "known_statuses": counts(&r.known.statuses),
            "unknown_statuses": counts(&r.unknown.statuses),
            "same_statuses": r.same_statuses,
            "same_body_keys": r.same_shape,
            "differing_fields": r.differing,
            "failed_requests": r.known.failed + r.unknown.failed,
            "same_answers": r.same_answers(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_fixed_fields_that_differ_between_groups_are_reported_and_ids_are_not() {
        let mut known = Group::default();
        let mut unknown = Group::default();
        for i in 0..3 {
            known.record(
                1.0,
                202,
                &json!({"flow_id": format!("k{i}"), "steps_total": 4, "expires_at": format!("t{i}"), "attempts_remaining": 5}),
            );
            unknown.record(
                1.0,
                202,
                &json!({"flow_id": format!("u{i}"), "steps_total": 3, "expires_at": format!("s{i}"), "attempts_remaining": 5}),
            );
        }
        assert_eq!(known.shapes, unknown.shapes);
        assert_eq!(
            differing_fields(&known, &unknown),
            vec!["steps_total: 4 vs 3"]
        );
    }

    #[test]
    fn test_body_keys_compare_nested_paths_and_types() {
        let mut a = Group::default();
        let mut b = Group::default();
        a.record(1.0, 401, &json!({"error": {"code": "invalid_credentials"}}));
        b.record(
            1.0,
            401,
            &json!({"error": {"code": "invalid_credentials", "field": "x"}}),
        );
        assert_ne!(a.shapes, b.shapes);
    }

    #[test]
    fn test_smoke_shrinks_the_counts() {
        let args = EnumArgs::parse_from(["enumeration", "--smoke"]).smoke();
        assert!(args.requests <= 10 && args.warmup <= 2 && args.accounts <= 5);
    }

    #[test]
    fn test_every_route_limit_is_raised() {
        let env = server_env(Path::new("/tmp/x"));
        for route in LIMITED_ROUTES {
            for per in ["IP", "NETWORK", "IDENTIFIER"] {
                let key = format!("GATEHOUSE_RATE_LIMIT_{route}_PER_{per}_PER_MINUTE");
                assert!(env.iter().any(|(k, _)| *k == key), "{key}");
            }
        }
    }
}
