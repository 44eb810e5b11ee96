-- Synthetic events in bulk: $1 = first number, $2 = last number (inclusive). Used by
-- `gatehouse-bench replay` (bench/src/replay.rs) and by bench/pgbench/events-at-scale.sh through
-- PREPARE, so both generate the same rows.
insert into events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
select 'Account', 'bench-' || (g / 20), g % 20 + 1,
       (array['LoginFailed', 'LoginSucceeded', 'SessionStarted', 'SessionEnded'])[g % 4 + 1],
       '1.0',
       json_build_object(
         'at', to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         'prev', repeat('0', 64),
         'fact', case g % 4
           when 0 then json_build_object('LoginFailed', json_build_object(
             'reason', 'wrong_password', 'consecutive_failures', 1, 'context', ctx))
           when 1 then json_build_object('LoginSucceeded', json_build_object(
             'session_id', sid, 'context', ctx))
           when 2 then json_build_object('SessionStarted', json_build_object(
             'session_id', sid, 'token_hash', md5(sid::text) || md5(g::text), 'context', ctx,
             'expires_at', to_char((t + interval '12 hours') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
             'idle_expires_at', to_char((t + interval '30 minutes') at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
           else json_build_object('SessionEnded', json_build_object(
             'session_id', sid, 'reason', 'logged_out', 'context', ctx))
         end),
       '{"recorded_by": "gatehouse-bench"}'::json
  from (select g,
               timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second' as t,
               md5((g / 4)::text)::uuid as sid,
               json_build_object('ip', '203.0.113.' || (g % 250), 'user_agent', 'bench/1.0',
                                 'device_id', 'device-' || (g / 20)) as ctx
          from generate_series($1::bigint, $2::bigint) g) s
