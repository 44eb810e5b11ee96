-- Embedded event store (sqlite-es layout). SQLite serialises writers, so a position assigned
-- inside the writing transaction is already commit order.
create table events
(
    aggregate_type text                          not null,
    aggregate_id   text                          not null,
    sequence       integer check (sequence >= 0) not null,
    event_type     text                          not null,
    event_version  text                          not null,
    payload        text                          not null,
    metadata       text                          not null,
    position       integer,
    recorded_at    text                          not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (aggregate_type, aggregate_id, sequence)
) strict;

create unique index events_position on events (position);

create trigger events_assign_position after insert on events
begin
    update events set position = (select coalesce(max(position), 0) + 1 from events)
     where rowid = new.rowid;
end;

create trigger events_no_update before update of aggregate_type, aggregate_id, sequence, event_type,
    event_version, payload, metadata, recorded_at on events
begin
    select raise(abort, 'events are append-only');
end;

create trigger events_no_delete before delete on events
begin
    select raise(abort, 'events are append-only');
end;

create table snapshots
(
    aggregate_type   text                                  not null,
    aggregate_id     text                                  not null,
    last_sequence    integer check (last_sequence >= 0)    not null,
    current_snapshot integer check (current_snapshot >= 0) not null,
    payload          text                                  not null,
    primary key (aggregate_type, aggregate_id)
) strict;

create table identifier_claims
(
    lookup     text    primary key,
    account_id text    not null,
    kind       text    not null,
    claimed_ms integer not null
) strict;

create table account_keys
(
    account_id   text    primary key,
    wrapped_key  blob    not null,
    created_ms   integer not null,
    destroyed_ms integer
) strict;

create table projection_checkpoints
(
    projection text    primary key,
    tx_id      integer not null,
    position   integer not null,
    updated_ms integer not null
) strict;
