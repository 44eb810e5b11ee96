-- What a person typed to start a self-service flow, masked (`a*****e@example.com`), and which
-- channel it names: `GET /v1/flows/{id}` shows it to every caller that is not the account's
-- owner (issue #20), the same for accounts and unknown identifiers. Kept for every flow, so both
-- paths do the same work; rows past their expiry are removed as new ones come. Not derived from
-- events (like `code_secrets`), and never a full contact.
create table flow_destinations
(
    flow_id     text   primary key,
    channel     text   not null,
    destination text   not null,
    expires_ms  bigint not null
);
create index flow_destinations_by_expiry on flow_destinations (expires_ms);
