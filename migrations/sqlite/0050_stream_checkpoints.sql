-- Signed checkpoints of the global stream (gatehouse-replay checkpoint / verify).
-- Each row signs (Ed25519) the position reached, the number of events up to it, the running
-- SHA-256 digest of the stream up to it and a digest of the per-aggregate chain heads below.
create table stream_checkpoints
(
    id           integer primary key,
    tx_id        bigint not null,
    position     bigint not null,
    event_count  bigint not null,
    digest       text   not null,
    heads_digest text   not null,
    public_key   text   not null,
    signature    text   not null,
    created_ms   bigint not null
);

-- The chain head (link after the last event) of every aggregate that changed since the previous
-- checkpoint, so that verify can pin an altered or removed last event and events inserted below a
-- checkpoint.
create table stream_checkpoint_heads
(
    checkpoint_id  bigint not null references stream_checkpoints (id),
    aggregate_type text   not null,
    aggregate_id   text   not null,
    sequence       bigint not null,
    head           text   not null,
    primary key (checkpoint_id, aggregate_type, aggregate_id)
);
create index stream_checkpoint_heads_by_aggregate
    on stream_checkpoint_heads (aggregate_type, aggregate_id, checkpoint_id);
