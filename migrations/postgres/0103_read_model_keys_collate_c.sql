-- The read models' indexed text columns (ids, account ids, kinds, statuses, IPs) compare in the
-- "C" collation. The database default here is C.UTF-8, which orders UTF-8 text exactly as "C"
-- does (by code point), but PostgreSQL before 17 compares it through the C library's strcoll:
-- every index comparison paid for a locale lookup and a collating call. Same order, same
-- results; measured on a 1 M-event rebuild into fresh tables: 12.7-13.3 s before, 12.1-12.3 s
-- after, and the comparison with live 4.3 s before, 3.8 s after. (SQLite compares text bytewise
-- already: no counterpart there.)
alter table lockout_state_v1
    alter column account_id type text collate "C";
alter table login_history_v1
    alter column account_id type text collate "C",
    alter column ip type text collate "C";
alter table sessions_v1
    alter column session_id type text collate "C",
    alter column account_id type text collate "C";
alter table notification_outbox_v1
    alter column id type text collate "C",
    alter column account_id type text collate "C",
    alter column status type text collate "C";
alter table notification_contacts_v1
    alter column account_id type text collate "C";
alter table recovery_cases_v1
    alter column flow_id type text collate "C",
    alter column status type text collate "C";
alter table alerts_v1
    alter column id type text collate "C",
    alter column rule type text collate "C",
    alter column subject type text collate "C",
    alter column status type text collate "C";
alter table alert_evidence_v1
    alter column alert_id type text collate "C",
    alter column aggregate_id type text collate "C";
alter table alert_signals_v1
    alter column signal type text collate "C",
    alter column aggregate_id type text collate "C";
alter table alert_known_v1
    alter column account_id type text collate "C",
    alter column kind type text collate "C",
    alter column value type text collate "C";
alter table alert_recovery_marks_v1
    alter column account_id type text collate "C";
