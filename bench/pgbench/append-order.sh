#!/usr/bin/env bash
# What the global stream's ordering rule costs an append, measured with pgbench on the server the
# tests use (issue #23 item 4; BENCHMARKS.md). Three tables of the same shape as `events`' hot
# columns, one-row insert transactions in autocommit, 8 clients, rounds alternating:
#   plain       no trigger (the limit);
#   first_write the statement-level trigger of migration 0170 (events are the first write of their
#               transaction), what Gatehouse runs;
#   serialised  the dropped design: an exclusive transaction-level advisory lock held to commit.
# Usage: bench/pgbench/append-order.sh [seconds per run] [rounds]   (PGHOST etc. as for psql)
set -euo pipefail
seconds=${1:-8}
rounds=${2:-2}
db=gatehouse_append_bench
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
psql -qX -d postgres -c "drop database if exists $db" -c "create database $db"
psql -qX -d "$db" <<'SQL'
create function first_write() returns trigger language plpgsql as $$
begin
    if pg_current_xact_id_if_assigned() is not null then
        if not exists (select 1 from first_write where tx_id = pg_current_xact_id()) then
            raise exception 'events must be the first write of their transaction';
        end if;
    end if;
    return null;
end $$;
create function serialised() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(1, 2);
    return null;
end $$;
create table plain (tx_id xid8 not null default pg_current_xact_id(),
                    global_position bigserial primary key, aggregate_id text, payload jsonb);
create table first_write (like plain including all);
create table serialised (like plain including all);
create trigger t before insert on first_write for each statement execute function first_write();
create trigger t before insert on serialised for each statement execute function serialised();
SQL
dir=$(mktemp -d)
trap 'rm -rf "$dir"; psql -qX -d postgres -c "drop database if exists $db"' EXIT
for t in plain first_write serialised; do
  echo "insert into $t (aggregate_id, payload) values (md5(random()::text), '{\"fact\":{\"SignInFailed\":{}}}');" > "$dir/$t.sql"
done
for round in $(seq "$rounds"); do
  for t in plain first_write serialised; do
    tps=$(pgbench -n -c 8 -j 2 -T "$seconds" -f "$dir/$t.sql" "$db" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    printf 'round %s  %-12s %8.0f tx/s\n' "$round" "$t" "$tps"
  done
done
