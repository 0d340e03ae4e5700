//! The app's own small picture of the fleet, kept for the tray's one-line summary and to notice
//! when an agent's online state really changes (so a repeated push does not notify twice).

use std::collections::{BTreeMap, HashMap};

use crate::types::{AgentView, ContainerView};

#[derive(Debug, Default)]
pub struct Fleet {
    /// Agent id → (name, online).
    agents: BTreeMap<String, (String, bool)>,
    /// Agent id → (running, total) from its latest container list.
    containers: HashMap<String, (usize, usize)>,
}

impl Fleet {
    /// Replaces the agent list (after `list_agents`).
    pub fn set_agents(&mut self, agents: &[AgentView]) {
        self.agents = agents
            .iter()
            .map(|a| (a.id.clone(), (a.name.clone(), a.online)))
            .collect();
        self.containers.retain(|id, _| self.agents.contains_key(id));
    }

    /// Records an agent's status; returns the previous online state if the agent was known.
    pub fn set_online(&mut self, id: &str, name: &str, online: bool) -> Option<bool> {
        self.agents
            .insert(id.to_string(), (name.to_string(), online))
            .map(|(_, was)| was)
    }

    /// Records an agent's container list.
    pub fn set_containers(&mut self, agent_id: &str, list: &[ContainerView]) {
        let running = list.iter().filter(|c| c.state == "running").count();
        self.containers
            .insert(agent_id.to_string(), (running, list.len()));
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// One line for the tray menu, e.g. `2 of 3 agents online · 5 of 7 containers running`.
    pub fn summary(&self) -> String {
        if self.agents.is_empty() {
            return "No agents yet".to_string();
        }
        let online = self.agents.values().filter(|(_, up)| *up).count();
        let (running, total) = self
            .agents
            .iter()
            .filter(|(_, (_, up))| *up)
            .filter_map(|(id, _)| self.containers.get(id))
            .fold((0, 0), |(r, t), (cr, ct)| (r + cr, t + ct));
        format!(
            "{online} of {} agents online · {running} of {total} containers running",
            self.agents.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, online: bool) -> AgentView {
        AgentView {
            id: id.into(),
            name: format!("n-{id}"),
            online,
            last_seen: None,
            docker_version: None,
            version: None,
            os: None,
            arch: None,
            hostname: None,
        }
    }

    fn container(state: &str) -> ContainerView {
        ContainerView {
            id: "x".into(),
            name: "x".into(),
            image: "i".into(),
            state: state.into(),
            status: String::new(),
            created: 0,
            ports: vec![],
            health: None,
        }
    }

    #[test]
    fn summary_counts_online_agents_and_their_containers() {
        let mut fleet = Fleet::default();
        assert_eq!(fleet.summary(), "No agents yet");
        fleet.set_agents(&[agent("a", true), agent("b", true), agent("c", false)]);
        fleet.set_containers("a", &[container("running"), container("exited")]);
        fleet.set_containers("b", &[container("running")]);
        fleet.set_containers("c", &[container("running")]);
        assert_eq!(
            fleet.summary(),
            "2 of 3 agents online · 2 of 3 containers running"
        );
        // An agent going offline takes its containers out of the count.
        assert_eq!(fleet.set_online("b", "n-b", false), Some(true));
        assert_eq!(
            fleet.summary(),
            "1 of 3 agents online · 1 of 2 containers running"
        );
        assert_eq!(fleet.set_online("d", "n-d", true), None);
    }
}
