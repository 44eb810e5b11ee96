-- Read models. Versioned names: a change of shape means a new table and a rebuild.
create table lockout_state_v1
(
    account_id           text   primary key,
    consecutive_failures integer not null,
    lock_level           integer not null,
    locked_until_ms      integer,
    last_failure_ms      integer,
    last_success_ms      integer,
    updated_ms           integer not null
) strict;

create table login_history_v1
(
    account_id  text   not null,
    sequence    integer not null,
    at_ms       integer not null,
    outcome     text   not null,
    reason      text,
    ip          text,
    user_agent  text,
    device_id   text,
    session_id  text,
    primary key (account_id, sequence)
) strict;
create index login_history_v1_by_time on login_history_v1 (account_id, at_ms desc, sequence desc);

create table sessions_v1
(
    session_id         text   primary key,
    account_id         text   not null,
    started_ms         integer not null,
    expires_ms         integer not null,
    idle_expires_ms    integer not null,
    last_extended_ms   integer not null,
    ended_ms           integer,
    end_reason         text,
    device_id          text,
    ip                 text,
    user_agent         text
) strict;
create index sessions_v1_by_account on sessions_v1 (account_id, started_ms);
