-- See the PostgreSQL migration of the same number.

-- Channels each account has verified, so notices go only where the owner proved they read.
create table notification_contacts_v1
(
    account_id     text   primary key,
    email_verified integer not null default 0,
    phone_verified integer not null default 0
);

-- One row per message and channel. Rows come from events; `status` moves only on the delivery
-- outcome events, so a rebuild from zero reproduces this table exactly and re-sends nothing.
create table notification_outbox_v1
(
    id          text   primary key,
    account_id  text   not null,
    sequence    integer not null,
    topic       text   not null,
    channel     text   not null,
    code_id     text,
    details     text   not null,
    created_ms  integer not null,
    expires_ms  integer,
    status      text   not null,
    updated_ms  integer not null
);
create index notification_outbox_v1_pending on notification_outbox_v1 (status, created_ms);
create index notification_outbox_v1_by_account on notification_outbox_v1 (account_id, created_ms);

-- Worker bookkeeping (not derived from events): tries, next try, and a lease so that two server
-- processes never send the same message at once.
create table notification_attempts
(
    id              text   primary key,
    attempts        integer not null,
    next_attempt_ms integer not null,
    leased_until_ms integer not null
);

-- The plaintext a delivery needs, sealed under a server key, kept only until it is sent or
-- expires: never in the event store.
create table code_secrets
(
    code_id    text   primary key,
    sealed     text   not null,
    expires_ms integer not null
);
create index code_secrets_by_expiry on code_secrets (expires_ms);
