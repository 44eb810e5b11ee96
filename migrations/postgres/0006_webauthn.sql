-- Security keys (WebAuthn).
-- The state kept between the two halves of a ceremony: a challenge and the credentials it may be
-- answered with (public keys). Single use: read by deleting.
create table webauthn_ceremonies
(
    ceremony_id text   primary key,
    account_id  text   not null,
    purpose     text   not null,
    state       text   not null,
    expires_ms  bigint not null
);
create index webauthn_ceremonies_by_expiry on webauthn_ceremonies (expires_ms);

-- Which account holds each credential id: a credential is registered to one account only.
create table security_key_claims
(
    key_id     text   primary key,
    account_id text   not null,
    claimed_ms bigint not null
);
