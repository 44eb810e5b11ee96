//! The cqrs-es shim: `handle` runs the pure decision and writes each fact with its chain link.
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;

use super::commands::AccountCommand;
use super::error::AccountError;
use super::events::AccountEvent;
use super::services::AccountServices;

pub use super::state::Account;

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = AccountServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let (at, facts) = self.decide(command, services).await?;
        for fact in facts {
            // Each event links to the chain head *after* its predecessor was applied.
            let event = AccountEvent {
                at,
                prev: self.chain.clone(),
                fact,
            };
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.fold(&event);
    }
}
