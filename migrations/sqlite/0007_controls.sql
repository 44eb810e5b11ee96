-- Last use of each API key: when and from which client address. Kept beside the events (a use
-- is not a change to the account) and overwritten on each use.
create table api_key_usage
(
    key_id       text   primary key,
    account_id   text   not null,
    last_used_ms bigint not null,
    last_ip      text
);
create index api_key_usage_by_account on api_key_usage (account_id);
