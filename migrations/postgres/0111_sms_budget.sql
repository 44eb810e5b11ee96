-- SMS pumping guard (issue #18 item 5): hourly budgets of text messages shared by every server
-- process, one row per hour and scope (`global`, or a country calling code such as `+44`),
-- counted up in one upsert that refuses past the budget.
create table sms_budget (
    window_ms bigint not null,
    scope text not null,
    sent bigint not null,
    primary key (window_ms, scope)
);

-- Each message's admission is decided once (at sign-up, or by the delivery worker), keyed by its
-- code id or notification id: `scope` is empty when admitted, else the budget that was spent or
-- `deny:<prefix>`. A retried send is not counted again.
create table sms_admissions (
    id text primary key,
    scope text not null,
    window_ms bigint not null
);
create index sms_admissions_by_window on sms_admissions (window_ms);
