-- Read models. Versioned names: a change of shape means a new table and a rebuild.
create table lockout_state_v1
(
    account_id           text   primary key,
    consecutive_failures bigint not null,
    lock_level           bigint not null,
    locked_until_ms      bigint,
    last_failure_ms      bigint,
    last_success_ms      bigint,
    updated_ms           bigint not null
);

create table login_history_v1
(
    account_id  text   not null,
    sequence    bigint not null,
    at_ms       bigint not null,
    outcome     text   not null,
    reason      text,
    ip          text,
    user_agent  text,
    device_id   text,
    session_id  text,
    primary key (account_id, sequence)
);
create index login_history_v1_by_time on login_history_v1 (account_id, at_ms desc, sequence desc);

create table sessions_v1
(
    session_id         text   primary key,
    account_id         text   not null,
    started_ms         bigint not null,
    expires_ms         bigint not null,
    idle_expires_ms    bigint not null,
    last_extended_ms   bigint not null,
    ended_ms           bigint,
    end_reason         text,
    device_id          text,
    ip                 text,
    user_agent         text
);
create index sessions_v1_by_account on sessions_v1 (account_id, started_ms);
