-- Lost-second-factor recovery cases, for reviewers: one row per case that reached review.
create table recovery_cases_v1
(
    flow_id        text   primary key,
    account_id     text   not null,
    status         text   not null,
    submitted_ms   bigint not null,
    decided_ms     bigint,
    reviewer       text,
    reason         text,
    hold_until_ms  bigint
);
create index recovery_cases_v1_by_status on recovery_cases_v1 (status, submitted_ms);
