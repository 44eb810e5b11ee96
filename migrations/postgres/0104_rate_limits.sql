-- Shared rate limits (GCRA): one row per limited key (`login:ip:203.0.113.7`, …), updated by
-- every server process in one statement per request. `tat_us` is the key's theoretical arrival
-- time in microseconds on the database clock; a row whose `tat_us` has passed is back to full
-- allowance and is pruned by the housekeeping loop (deleting it changes no decision).
create table rate_limit_buckets
(
    key         text    primary key collate "C",
    tat_us      bigint  not null,
    interval_us bigint  not null,
    seen_us     bigint  not null,
    admitted    boolean not null
);
create index rate_limit_buckets_by_tat on rate_limit_buckets (tat_us);
