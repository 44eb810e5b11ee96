-- Events are the first write of their transaction (issue #23, item 4).
--
-- Readers follow the global stream in (tx_id, global_position) order below a horizon: the oldest
-- transaction still running that may append events to this database (see store/src/stream.rs).
-- They recognise such a transaction by its lock on this table: an insert takes its row-exclusive
-- lock on `events` before the transaction has an id, so every appender running when a reader takes
-- its snapshot is seen. A transaction that wrote something else first already has an id, without
-- the lock: if it appended events later, their tx_id would fall below positions already read. So
-- that cannot happen: an insert into `events` that is not its transaction's first write is refused.
--
-- This costs one statement-level trigger per insert; appends still commit concurrently (no lock
-- is taken). Long transactions elsewhere, in another database or writing other tables of this
-- one, hold no reader back.
create function events_first_write_of_transaction() returns trigger language plpgsql as
$$
begin
    -- No transaction id yet: this insert is the first write (the hot path, one call). With one,
    -- the transaction must have appended events already (an index lookup, rare). Nested, so
    -- that the lookup, which would give the transaction an id, runs only then.
    if pg_current_xact_id_if_assigned() is not null then
        if not exists (select 1 from events where tx_id = pg_current_xact_id()) then
            raise exception 'events must be the first write of their transaction (global stream order)'
                using errcode = '55000';
        end if;
    end if;
    return null;
end
$$;

create trigger events_first_write
    before insert on events
    for each statement execute function events_first_write_of_transaction();
