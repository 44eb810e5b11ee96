-- Snapshots compressed with lz4 instead of pglz (issue #23, item 1).
--
-- An account's snapshot is about 30 KB of JSON (sessions, devices), rewritten every 20 events,
-- and PostgreSQL compresses it before moving it out of line. pglz made that write about
-- 0.43 ms of the database's CPU, a quarter of everything PostgreSQL executes for a password
-- sign-in; lz4 does it in about a third of the time (BENCHMARKS.md). Only new writes use it;
-- rows already stored stay readable as they are.
--
-- lz4 needs PostgreSQL 14 built with it (the distributions' packages are). Without it the
-- table keeps pglz and everything works as before.
do $$
begin
    execute 'alter table snapshots alter column payload set compression lz4';
exception
    when feature_not_supported or syntax_error then
        raise notice 'snapshots keep pglz compression: %', sqlerrm;
end
$$;
