//! Event hooks: how the embedding service hears about logins, logouts and token changes.

use std::sync::Arc;
use tessera_core::Event;

/// A function called with every event. Called on the request's task: keep it quick, and hand
/// slow work (sending mail, writing to another system) to a channel or a spawned task.
pub type EventHook = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Clone, Default)]
pub(crate) struct Events {
    hooks: Vec<EventHook>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").field("hooks", &self.hooks.len()).finish()
    }
}

impl Events {
    pub(crate) fn add(&mut self, hook: EventHook) {
        self.hooks.push(hook);
    }

    pub(crate) fn emit(&self, event: &Event) {
        tracing::debug!(event = ?event.kind, user = ?event.user_id, client = ?event.client, "tessera event");
        for hook in &self.hooks {
            hook(event);
        }
    }
}
