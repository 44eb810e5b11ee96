-- A fingerprint of the master key (an HMAC under a derived sub-key, not the key), written at
-- first start: a server started with another key refuses to run instead of silently failing
-- every lookup and unseal.
create table key_check
(
    id          smallint primary key check (id = 1),
    fingerprint text   not null,
    created_ms  bigint not null
);
