-- Webhooks (issue #22). The subscriptions' facts are events of the `Webhook` aggregate; these
-- tables are what the routes list and what the delivery worker works from.

-- Subscriptions as their aggregate last stood (written after each command, never older than
-- what is there: `version` is the aggregate's sequence).
create table webhooks
(
    id                   text   primary key,
    url                  text   not null,
    -- JSON array of kind patterns.
    kinds                text   not null,
    enabled              bigint not null,
    deleted              bigint not null default 0,
    created_ms           bigint not null,
    version              bigint not null,
    consecutive_failures bigint not null default 0
);

-- Signing secrets, sealed under a server key (never in an event); facts name them by id.
create table webhook_secrets
(
    webhook_id text   not null,
    secret_id  text   not null,
    sealed     text   not null,
    created_ms bigint not null,
    primary key (webhook_id, secret_id)
);

-- The outbox: one row per (subscription, event or alert change), keyed by the message id that
-- the `webhook-id` header carries, so that a row is written once however often the feed reads
-- its source again. The body is the payload as sent (redacted when it was written).
create table webhook_outbox
(
    message_id      text   primary key,
    webhook_id      text   not null,
    kind            text   not null,
    body            text   not null,
    created_ms      bigint not null,
    -- pending, delivered, failed (given up), dropped (subscription deleted or disabled)
    status          text   not null,
    attempts        bigint not null default 0,
    next_attempt_ms bigint not null,
    leased_until_ms bigint not null default 0,
    updated_ms      bigint not null
);
create index webhook_outbox_due on webhook_outbox (status, next_attempt_ms);
create index webhook_outbox_by_webhook on webhook_outbox (webhook_id, status);

-- The feed's checkpoint and lease (same shape as stream_publishers): how far the global stream
-- and the alerts read model's changes were turned into outbox rows, and which server process
-- does it.
create table webhook_feed
(
    name            text   primary key,
    tx_id           bigint not null default 0,
    position        bigint not null default 0,
    alerts_tx       bigint not null default 0,
    alerts_pos      bigint not null default 0,
    alerts_id       text   not null default '',
    holder          text,
    leased_until_ms bigint not null default 0,
    updated_ms      bigint not null default 0
);
