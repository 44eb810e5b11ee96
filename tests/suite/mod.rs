mod mail;
mod support;

mod admin_api;
mod alerts_rules;
mod e2e_accounts;
mod e2e_login;
mod e2e_lost_factor;
mod e2e_recovery;
mod e2e_second_factor;
mod e2e_security_keys;
mod e2e_sessions;
mod fixtures_v1;
mod projections_restart;
mod replay_audit;
mod replay_tool;
mod secrets;
mod store_contract;
