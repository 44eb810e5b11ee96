-- The door a sign-in attempt went through: null for the untrusted door (and every attempt
-- recorded before doors), else the trusted device whose token came with it.
alter table login_history_v1 add column trusted_device_id text;
