//! The recent alerts the app lists, newest first and bounded, and which of them are unseen (the
//! tray's red dot and count). Pure bookkeeping with the time passed in, so tests need no clock.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use specta::Type;

/// How many alerts are kept; older ones fall off (the relay's audit log is the long record).
pub const MAX_ALERTS: usize = 50;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A container stopped without a stop from ZedOps.
    Crashed,
    /// The kernel killed a container's process for lack of memory.
    Oom,
    /// A container's health check is failing.
    Unhealthy,
    /// An agent stayed offline longer than the grace period.
    Offline,
    /// An agent whose offline alert was shown came back (good news: never counted as unseen).
    Online,
    /// An agent's check found newer images (one alert per batch; never counted as unseen).
    Updates,
}

/// An alert as it is raised, before the log numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub kind: AlertKind,
    pub agent_id: String,
    pub agent_name: String,
    pub container: Option<String>,
    pub title: String,
    pub body: String,
}

/// One listed alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// Increasing within one run of the app.
    pub id: u32,
    /// Unix seconds (`u32` keeps it a plain JavaScript number; good until 2106).
    pub at: u32,
    pub kind: AlertKind,
    pub agent_id: String,
    pub agent_name: String,
    /// The container's name, for container alerts.
    pub container: Option<String>,
    pub title: String,
    pub body: String,
    /// The agent was muted: listed here, but no native notification was shown.
    pub muted: bool,
    /// Counted in the badge until seen; muted alerts and `online` ones start out seen.
    pub seen: bool,
}

#[derive(Debug, Default)]
pub struct AlertLog {
    /// Newest first.
    alerts: VecDeque<AlertView>,
    next_id: u32,
}

impl AlertLog {
    /// Records an alert raised at `at` (Unix seconds); `muted` says whether its agent is muted.
    pub fn push(&mut self, alert: NewAlert, muted: bool, at: u32) -> AlertView {
        self.next_id = self.next_id.wrapping_add(1);
        let view = AlertView {
            id: self.next_id,
            at,
            // A muted agent must not light the tray either; good news needs no red dot.
            seen: muted || matches!(alert.kind, AlertKind::Online | AlertKind::Updates),
            kind: alert.kind,
            agent_id: alert.agent_id,
            agent_name: alert.agent_name,
            container: alert.container,
            title: alert.title,
            body: alert.body,
            muted,
        };
        self.alerts.push_front(view.clone());
        self.alerts.truncate(MAX_ALERTS);
        view
    }

    /// How many alerts the badge counts.
    pub fn unseen(&self) -> u32 {
        self.alerts.iter().filter(|a| !a.seen).count() as u32
    }

    /// Marks every alert seen; returns whether any was not.
    pub fn mark_seen(&mut self) -> bool {
        let mut changed = false;
        for alert in self.alerts.iter_mut().filter(|a| !a.seen) {
            alert.seen = true;
            changed = true;
        }
        changed
    }

    /// Newest first.
    pub fn list(&self) -> Vec<AlertView> {
        self.alerts.iter().cloned().collect()
    }

    pub fn clear(&mut self) {
        self.alerts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(kind: AlertKind, agent: &str) -> NewAlert {
        NewAlert {
            kind,
            agent_id: agent.into(),
            agent_name: format!("name-{agent}"),
            container: None,
            title: format!("{kind:?} on {agent}"),
            body: String::new(),
        }
    }

    #[test]
    fn counts_unseen_alerts_until_marked_seen() {
        let mut log = AlertLog::default();
        assert_eq!(log.unseen(), 0);
        log.push(alert(AlertKind::Crashed, "a"), false, 10);
        log.push(alert(AlertKind::Offline, "b"), false, 11);
        assert_eq!(log.unseen(), 2);
        let list = log.list();
        assert_eq!(list[0].kind, AlertKind::Offline, "newest first");
        assert!(list[0].id > list[1].id);
        assert!(log.mark_seen());
        assert!(!log.mark_seen(), "nothing left to mark");
        assert_eq!(log.unseen(), 0);
        log.push(alert(AlertKind::Oom, "a"), false, 12);
        assert_eq!(log.unseen(), 1);
    }

    #[test]
    fn muted_and_good_news_are_listed_but_not_counted() {
        let mut log = AlertLog::default();
        let muted = log.push(alert(AlertKind::Crashed, "a"), true, 10);
        assert!(muted.muted && muted.seen);
        log.push(alert(AlertKind::Online, "b"), false, 11);
        assert_eq!(log.unseen(), 0);
        assert_eq!(log.list().len(), 2);
    }

    #[test]
    fn keeps_the_newest_few() {
        let mut log = AlertLog::default();
        for i in 0..MAX_ALERTS as u32 + 5 {
            log.push(alert(AlertKind::Crashed, "a"), false, i);
        }
        let list = log.list();
        assert_eq!(list.len(), MAX_ALERTS);
        assert_eq!(list[0].at, MAX_ALERTS as u32 + 4);
        assert_eq!(log.unseen(), MAX_ALERTS as u32);
        log.clear();
        assert!(log.list().is_empty());
    }
}
