-- See the PostgreSQL migration of the same number.
create table recovery_cases_v1
(
    flow_id        text   primary key,
    account_id     text   not null,
    status         text   not null,
    submitted_ms   integer not null,
    decided_ms     integer,
    reviewer       text,
    reason         text,
    hold_until_ms  integer
);
create index recovery_cases_v1_by_status on recovery_cases_v1 (status, submitted_ms);
