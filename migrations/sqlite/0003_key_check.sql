-- See the PostgreSQL migration of the same number.
create table key_check
(
    id          integer primary key check (id = 1),
    fingerprint text    not null,
    created_ms  integer not null
) strict;
