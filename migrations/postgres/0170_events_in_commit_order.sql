-- The global stream without the cluster-wide horizon (issue #23, item 4).
--
-- Readers used to follow (tx_id, global_position) only below the oldest transaction still
-- running anywhere in the cluster (`pg_snapshot_xmin`), so that a transaction that took its
-- position early and committed late was never skipped. Any long transaction with a transaction
-- id, in any database of the cluster, held every read model back.
--
-- Now appends are in commit order by construction: every statement that inserts events first
-- takes a transaction-level advisory lock of this database, before its transaction has an id,
-- and keeps it until the transaction ends (commit or rollback). Transaction ids are handed out in
-- increasing order, so the appending transactions' ids increase in the order they commit, and
-- the committed events are always a prefix of (tx_id, global_position): a reader takes
-- everything after its position with no horizon, and no late commit can land below it.
--
-- The cost: appends to one database commit one at a time (the lock is held through the commit's
-- WAL flush). The statement is the whole transaction on the hot path (one multi-row insert in
-- autocommit), so the lock is held for that one statement and its commit.
--
-- Events already stored keep their (tx_id, global_position): every one of them was committed
-- before this migration could take its lock on the table, so checkpoints, signed stream
-- checkpoints and publisher positions keep their meaning; nothing is backfilled.
create function events_append_in_commit_order() returns trigger language plpgsql as
$$
begin
    if current_setting('gatehouse.appending_events', true) is distinct from 'on' then
        -- A transaction that already has an id could commit after an appender that took the
        -- lock later with a larger id: its events would land below positions already read.
        if pg_current_xact_id_if_assigned() is not null then
            raise exception 'events must be the first write of their transaction (global stream order)'
                using errcode = '55000';
        end if;
        perform pg_advisory_xact_lock(hashtext('gatehouse'), hashtext('events in commit order'));
        perform set_config('gatehouse.appending_events', 'on', true);
    end if;
    return null;
end
$$;

create trigger events_in_commit_order
    before insert on events
    for each statement execute function events_append_in_commit_order();
