//! Which agents' live state (container events and snapshots) one client connection receives,
//! as set by its `event.subscribe` requests (resolved by [`crate::lookup::subscription`]).

use std::collections::HashSet;

/// One connection's subscription. Connections start with none, so a CLI that only lists pays
/// nothing for the fleet's events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Subscription {
    #[default]
    Off,
    /// Every agent, including ones enrolled later.
    Fleet,
    /// These agent ids.
    Agents(HashSet<String>),
}

impl Subscription {
    /// Whether a push about `agent_id` goes to this connection.
    pub fn wants(&self, agent_id: &str) -> bool {
        match self {
            Subscription::Off => false,
            Subscription::Fleet => true,
            Subscription::Agents(ids) => ids.contains(agent_id),
        }
    }

    pub fn is_on(&self) -> bool {
        *self != Subscription::Off
    }
}
