-- Event store (postgres-es layout) plus the columns Gatehouse needs: a global order that never
-- skips a late commit (transaction id, then position), and the time the row was recorded.
create table events
(
    aggregate_type  text                         not null,
    aggregate_id    text                         not null,
    sequence        bigint check (sequence >= 0) not null,
    event_type      text                         not null,
    event_version   text                         not null,
    payload         json                         not null,
    metadata        json                         not null,
    global_position bigserial                    not null,
    tx_id           xid8                         not null default pg_current_xact_id(),
    recorded_at     timestamptz                  not null default now(),
    primary key (aggregate_type, aggregate_id, sequence)
);

-- Readers follow (tx_id, global_position) and only below the oldest running transaction.
create unique index events_stream_order on events (tx_id, global_position);

-- Events are append-only: updates and deletes are refused outright.
create function events_are_append_only() returns trigger language plpgsql as
$$
begin
    raise exception 'events are append-only (% refused)', tg_op using errcode = '42501';
end
$$;
create trigger events_append_only
    before update or delete or truncate on events
    for each statement execute function events_are_append_only();

-- Snapshots are a cache of aggregate state: one row per aggregate, rewritten as it grows.
create table snapshots
(
    aggregate_type   text                                 not null,
    aggregate_id     text                                 not null,
    last_sequence    bigint check (last_sequence >= 0)    not null,
    current_snapshot bigint check (current_snapshot >= 0) not null,
    payload          json                                 not null,
    primary key (aggregate_type, aggregate_id)
);

-- Uniqueness of email/phone across accounts: a keyed hash of the normalised identifier is claimed
-- before the account's first event is written (and can be rebuilt from AccountRegistered).
create table identifier_claims
(
    lookup     text   primary key,
    account_id text   not null,
    kind       text   not null,
    claimed_ms bigint not null
);

-- Per-account data keys, wrapped under the master key. Destroying a row erases the account's
-- sealed personal data while its events stay.
create table account_keys
(
    account_id   text   primary key,
    wrapped_key  bytea  not null,
    created_ms   bigint not null,
    destroyed_ms bigint
);

-- Where each projection stands in the global stream; written in the same transaction as the
-- read-model change it accounts for.
create table projection_checkpoints
(
    projection text   primary key,
    tx_id      bigint not null,
    position   bigint not null,
    updated_ms bigint not null
);
