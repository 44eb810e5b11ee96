#!/usr/bin/env bash
# The event table at scale (issue #23 item 5, docs/scaling.md section 4): a database migrated like
# production, N synthetic events generated in bulk by the replay benchmark's own generator
# (bench/sql/generate-events.sql), then sizes, bytes per event, and the page reads of the two
# lookups every command and every read model make. Page counts do not depend on the machine's load;
# the times printed beside them do.
# Usage: bench/pgbench/events-at-scale.sh [events, default 10000000] [--keep]
#        (PGHOST etc. as for psql; needs about 0.7 GB of disk per million events)
set -euo pipefail
events=${1:-10000000}
keep=${2:-}
db=gatehouse_events_at_scale
chunk=1000000
here=$(cd "$(dirname "$0")/../.." && pwd)
export PGHOST=${PGHOST:-127.0.0.1} PGUSER=${PGUSER:-postgres}
psql() { command psql -qX -v ON_ERROR_STOP=1 "$@"; }

psql -d postgres -c "drop database if exists $db" -c "create database $db"
if [ "$keep" != "--keep" ]; then
  trap 'psql -d postgres -c "drop database if exists $db"' EXIT
fi
for m in "$here"/migrations/postgres/*.sql; do psql -d "$db" -f "$m" >/dev/null; done

started=$(date +%s)
from=0
while [ "$from" -lt "$events" ]; do
  to=$(( from + chunk < events ? from + chunk - 1 : events - 1 ))
  psql -d "$db" -c "prepare generate(bigint, bigint) as $(cat "$here/bench/sql/generate-events.sql")" \
    -c "execute generate($from, $to)"
  from=$(( to + 1 ))
  echo "generated $from events ($(( $(date +%s) - started )) s)" >&2
done
psql -d "$db" -c "vacuum analyze events" -c checkpoint
echo "generation, vacuum and checkpoint: $(( $(date +%s) - started )) s" >&2

psql -d "$db" -At -F ' | ' <<'SQL'
select 'events | heap MiB | events_pkey MiB | events_stream_order MiB | bytes per event, all included';
select count(*),
       round(pg_relation_size('events') / 1048576.0, 1),
       round(pg_relation_size('events_pkey') / 1048576.0, 1),
       round(pg_relation_size('events_stream_order') / 1048576.0, 1),
       round(pg_total_relation_size('events')::numeric / count(*))
  from events;
SQL
# B-tree depth (pageinspect ships with PostgreSQL's contrib; skipped where it is missing).
if psql -d "$db" -c "create extension if not exists pageinspect" 2>/dev/null; then
  psql -d "$db" -At -c "select 'B-tree levels below the root: events_pkey ' || (bt_metap('events_pkey')).level
                               || ', events_stream_order ' || (bt_metap('events_stream_order')).level"
fi

# One aggregate's 20 events (what a command reads without a cached state), an aggregate in the
# middle of the table; the stream's next 1,000 events after a position in the middle (what the
# projections runner reads). Each run twice: the second is the one with the pages cached.
middle=$(( events / 2 ))
aggregate="bench-$(( middle / 20 ))"
position=$(psql -d "$db" -At -c "select tx_id || ',' || global_position from events
                                  where aggregate_id = '$aggregate' and sequence = 1")
for query in \
  "select * from events where aggregate_type = 'Account' and aggregate_id = '$aggregate' order by sequence" \
  "select * from events where (tx_id, global_position) > ('${position%,*}'::xid8, ${position#*,}) order by tx_id, global_position limit 1000"; do
  echo "--- $query"
  for _ in 1 2; do
    psql -d "$db" -At -c "explain (analyze, buffers, costs off, timing off) $query" |
      awk '/^Planning/ { planning = 1 } /Index Scan|Buffers|Execution Time/ && !planning || /Execution Time/'
  done
done

# Appends at this size against appends to an empty table of the same schema, same run: pgbench,
# 4 clients, one event per transaction for a new aggregate with a random id, so every insert lands
# on a random leaf of events_pkey (the worst case for an index larger than shared_buffers).
empty=${db}_empty
psql -d postgres -c "drop database if exists $empty" -c "create database $empty"
trap 'psql -d postgres -c "drop database if exists $db" -c "drop database if exists $empty"' EXIT
[ "$keep" = "--keep" ] && trap 'psql -d postgres -c "drop database if exists $empty"' EXIT
for m in "$here"/migrations/postgres/*.sql; do psql -d "$empty" -f "$m" >/dev/null; done
append=$(mktemp)
cat > "$append" <<'SQL'
insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
values ('Account', md5(random()::text), 1, 'LoginFailed', '1.0',
        '{"fact": {"LoginFailed": {"reason": "wrong_password"}}}', '{}');
SQL
for round in 1 2; do
  for target in "$empty" "$db"; do
    rate=$(pgbench -n -c 4 -j 2 -T 10 -f "$append" "$target" 2>/dev/null | awk '/^tps/ { print $3 }')
    echo "appends, round $round, $([ "$target" = "$db" ] && echo "$events events" || echo "empty table"): $rate tx/s"
  done
done
rm -f "$append"
