-- Anomaly alerts (issue #5): the alerts read model, its evidence, and the rule state it folds.
-- Every table here is owned by the `alerts_v1` projection and rebuilt from the stream.

create table alerts_v1
(
    id             text   primary key,
    rule           text   not null,
    severity       text   not null,
    subject        text   not null,
    first_seen_ms  integer not null,
    last_seen_ms   integer not null,
    count          integer not null,
    status         text   not null,
    status_note    text,
    status_by      text,
    policy_version text   not null,
    -- Stream position of the last change (live feed cursor).
    updated_tx     integer not null,
    updated_pos    integer not null
) strict;
create index alerts_v1_by_time on alerts_v1 (first_seen_ms desc, id desc);
create index alerts_v1_by_subject on alerts_v1 (rule, subject, status);
create index alerts_v1_by_update on alerts_v1 (updated_tx, updated_pos);

create table alert_evidence_v1
(
    alert_id     text   not null,
    aggregate_id text   not null,
    sequence     integer not null,
    at_ms        integer not null,
    primary key (alert_id, aggregate_id, sequence)
) strict;

-- What the windowed rules count: one row per relevant event.
create table alert_signals_v1
(
    signal       text   not null,
    aggregate_id text   not null,
    sequence     integer not null,
    at_ms        integer not null,
    ip           text,
    net          text,
    primary key (signal, aggregate_id, sequence)
) strict;
create index alert_signals_v1_by_time on alert_signals_v1 (signal, at_ms);
create index alert_signals_v1_by_aggregate on alert_signals_v1 (signal, aggregate_id, at_ms);
create index alert_signals_v1_by_ip on alert_signals_v1 (signal, ip, at_ms);
create index alert_signals_v1_by_net on alert_signals_v1 (signal, net, at_ms);

-- Devices and IPs each account has signed in from (new-device / new-IP rules).
create table alert_known_v1
(
    account_id text not null,
    kind       text not null,
    value      text not null,
    primary key (account_id, kind, value)
) strict;

-- The last password reset or unlock of an account, until the next sign-in.
create table alert_recovery_marks_v1
(
    account_id text   primary key,
    sequence   integer not null,
    at_ms      integer not null
) strict;

-- Analysts search login history across accounts by IP and time.
create index login_history_v1_by_ip on login_history_v1 (ip, at_ms desc);
create index login_history_v1_by_at on login_history_v1 (at_ms desc);
