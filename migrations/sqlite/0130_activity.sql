-- The security activity of each account (issue #20): one row per security event, in plain
-- words, newest first by sequence. Derived from events (projection `activity_v1`); rebuilt by
-- `gatehouse-replay rebuild`. No secret is ever written here: destinations come masked.
create table activity_v1
(
    account_id text   not null,
    sequence   integer not null,
    at_ms      integer not null,
    kind       text   not null,
    outcome    text   not null,
    ip         text,
    user_agent text,
    device     text,
    detail     text   not null,
    primary key (account_id, sequence)
) strict;
create index activity_v1_by_kind on activity_v1 (account_id, kind, sequence);
