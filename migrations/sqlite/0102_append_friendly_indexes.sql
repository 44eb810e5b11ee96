-- Read models grow at the end of time. An index on a time column declared `desc` receives every
-- new row at its far left, where the B-tree has no fast path: each insert descends the tree and
-- splits leave half-empty pages. Ascending indexes take the same rows at their right edge, and
-- serve `order by … desc` just as well by scanning backwards. Measured on PostgreSQL with the
-- 500,000 login records of a 1 M-event stream inserted in time order: 3.8 s with the old indexes,
-- 3.3 s with these; the index on `at_ms` alone 19 MB against 11 MB.
drop index login_history_v1_by_time;
create index login_history_v1_by_time on login_history_v1 (account_id, at_ms, sequence);
drop index login_history_v1_by_ip;
create index login_history_v1_by_ip on login_history_v1 (ip, at_ms);
drop index login_history_v1_by_at;
create index login_history_v1_by_at on login_history_v1 (at_ms);
drop index alerts_v1_by_time;
create index alerts_v1_by_time on alerts_v1 (first_seen_ms, id);

-- The alerts rules keep their signal windows in memory and read this table only whole (after a
-- restart) or by time (pruning): the per-aggregate, per-IP and per-network indexes of the
-- row-at-a-time rules cost four index entries per signal and serve no query now.
drop index alert_signals_v1_by_time;
drop index alert_signals_v1_by_aggregate;
drop index alert_signals_v1_by_ip;
drop index alert_signals_v1_by_net;
create index alert_signals_v1_by_at on alert_signals_v1 (at_ms);
