-- The event stream publishers (issue #22: NATS JetStream): one row per stream name, with how far
-- the global stream and the alerts read model's changes are published, and the lease of the one
-- server process that publishes (the others stand by until it lapses).
create table stream_publishers
(
    name            text   primary key,
    -- Every event at or before (tx_id, position) is published.
    tx_id           bigint not null default 0,
    position        bigint not null default 0,
    -- Every alert change at or before (alerts_tx, alerts_pos, alerts_id) is published.
    alerts_tx       bigint not null default 0,
    alerts_pos      bigint not null default 0,
    alerts_id       text   not null default '',
    holder          text,
    leased_until_ms bigint not null default 0,
    updated_ms      bigint not null default 0
);
