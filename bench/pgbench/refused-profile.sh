#!/usr/bin/env bash
# The statements behind one refused sign-in (issue #23, BENCHMARKS.md "Round trips per command"):
# a throwaway PostgreSQL cluster of its own with pg_stat_statements, the release server on it
# (sign-in limits at 1,000,000 a minute, long locks), one locked account, then N refused sign-ins
# from 4 concurrent clients with the statistics reset just before. Prints every statement with
# its calls per refused sign-in and mean time, and the total of round trips per command.
# MODE=sign-in: the same with N successful password sign-ins (default Argon2) on one account
# that is never locked.
#
#   [MODE=refused|sign-in] bench/pgbench/refused-profile.sh [server binary] [N]
#
# Needs initdb/pg_ctl (PostgreSQL 15+ under /usr/lib/postgresql) and python3; as root the
# cluster runs as the `postgres` user. Everything it starts is stopped on exit.
set -euo pipefail
BIN=$(realpath "${1:-target/release/gatehouse}")
N=${2:-500}
MODE=${MODE:-refused}
case "$MODE" in refused|sign-in) ;; *) echo "MODE must be refused or sign-in" >&2; exit 2 ;; esac
PORT=${PORT:-55471}
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
DIR=$(mktemp -d /tmp/gatehouse-pgprof-XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
CONF
as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -q -v ON_ERROR_STOP=1)
"${PSQL[@]}" -d postgres -c "create database gatehouse"
"${PSQL[@]}" -d gatehouse -c "create extension pg_stat_statements"

PORT_HTTP=$((PORT + 1))
DATABASE_URL=postgres://postgres@127.0.0.1:$PORT/gatehouse \
GATEHOUSE_MASTER_KEY=$(printf '0%.0s' $(seq 64)) GATEHOUSE_LISTEN=127.0.0.1:$PORT_HTTP \
GATEHOUSE_LOG=warn GATEHOUSE_REQUIRE_VERIFIED_CONTACT=false GATEHOUSE_DEV_OUTBOX_DIR=$DIR/outbox \
GATEHOUSE_LOCKOUT_SECONDS=86400 GATEHOUSE_LOCKOUT_MAX_SECONDS=86400 \
GATEHOUSE_FLAGGED_LOGINS_PER_MINUTE=0 GATEHOUSE_RATE_LIMIT_PER_IP_PER_MINUTE=1000000000 \
GATEHOUSE_RATE_LIMIT_PER_IDENTIFIER_PER_MINUTE=1000000000 \
GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IP_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_SIGNUP_PER_NETWORK_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_SIGNUP_PER_IDENTIFIER_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_PER_NETWORK_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_PER_IDENTIFIER_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_IP_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_NETWORK_PER_MINUTE=1000000 \
GATEHOUSE_RATE_LIMIT_LOGIN_MFA_PER_IDENTIFIER_PER_MINUTE=1000000 \
  "$BIN" serve >"$DIR/server.out" 2>"$DIR/server.err" &
SERVER_PID=$!
for _ in $(seq 100); do grep -q "listening" "$DIR/server.out" 2>/dev/null && break; sleep 0.2; done
grep -q "listening" "$DIR/server.out" || { cat "$DIR/server.err"; exit 1; }

python3 - "$PORT_HTTP" "$N" "$MODE" <<'PY'
import json, sys, threading, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
n = int(sys.argv[2])
mode = sys.argv[3]
def post(path, body):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
assert post("/v1/accounts", {"email": "locked@example.com", "password": "benchmark-lantern-fjord-91"}) == 201
password = "wrong-password-here"
if mode == "sign-in":
    password = "benchmark-lantern-fjord-91"
else:
    for _ in range(20):
        if post("/v1/login", {"identifier": "locked@example.com", "password": password}) == 429:
            break
    else:
        sys.exit("the account did not lock")
# Warm up the connections and statement caches, then let the read models catch up.
for _ in range(40):
    post("/v1/login", {"identifier": "locked@example.com", "password": password})
import time; time.sleep(2)
PY
"${PSQL[@]}" -d gatehouse -c "select pg_stat_statements_reset()" >/dev/null
python3 - "$PORT_HTTP" "$N" "$MODE" <<'PY'
import json, sys, threading, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
n = int(sys.argv[2])
password = "benchmark-lantern-fjord-91" if sys.argv[3] == "sign-in" else "wrong-password-here"
codes = {}
def worker(k):
    for _ in range(k):
        req = urllib.request.Request(base + "/v1/login", json.dumps({"identifier": "locked@example.com", "password": password}).encode(), {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req) as r:
                c = r.status
        except urllib.error.HTTPError as e:
            c = e.code
        codes[c] = codes.get(c, 0) + 1
ts = [threading.Thread(target=worker, args=(n // 4,)) for _ in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print("answers:", codes, file=sys.stderr)
import time; time.sleep(2)  # the read models catch up
PY
"${PSQL[@]}" -d gatehouse -P pager=off <<SQL
select round(calls::numeric / $N, 2) as per_command, round(mean_exec_time::numeric, 3) as mean_ms,
       round(total_exec_time::numeric / $N, 3) as ms_per_command,
       left(regexp_replace(query, '\s+', ' ', 'g'), 110) as statement
  from pg_stat_statements
 where dbid = (select oid from pg_database where datname = 'gatehouse')
   and query not like '%pg_stat_statements%'
 order by calls desc, total_exec_time desc;
select round(sum(calls)::numeric / $N, 1) as round_trips_per_command,
       round(sum(total_exec_time)::numeric / $N, 3) as exec_ms_per_command
  from pg_stat_statements
 where dbid = (select oid from pg_database where datname = 'gatehouse')
   and query not like '%pg_stat_statements%';
SQL
