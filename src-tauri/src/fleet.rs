//! The app's own picture of the fleet, kept for the tray's one-line summary, to notice when an
//! agent's online state really changes (so a repeated push does not notify twice), and to patch
//! an agent's container list from live events without asking the relay.

use std::collections::{BTreeMap, HashMap};

use crate::types::{AgentView, ContainerView};

#[derive(Debug, Default)]
pub struct Fleet {
    /// Agent id → (name, online).
    agents: BTreeMap<String, (String, bool)>,
    /// Agent id → its containers, from its latest list, snapshot and events.
    containers: HashMap<String, Vec<ContainerView>>,
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
        self.containers.insert(agent_id.to_string(), list.to_vec());
    }

    /// An agent's containers as last known; `None` before its first list.
    pub fn containers(&self, agent_id: &str) -> Option<&[ContainerView]> {
        self.containers.get(agent_id).map(Vec::as_slice)
    }

    /// The agent's name, when known.
    pub fn agent_name(&self, id: &str) -> Option<&str> {
        self.agents.get(id).map(|(name, _)| name.as_str())
    }

    /// Whether the agent is online, when known.
    pub fn online(&self, id: &str) -> Option<bool> {
        self.agents.get(id).map(|(_, online)| *online)
    }

    /// Applies one container's new row (`None`: it was removed) to its agent's list and returns
    /// the updated list, or `None` when that agent's list was never loaded (nothing shows it).
    pub fn apply(
        &mut self,
        agent_id: &str,
        container_id: &str,
        row: Option<ContainerView>,
    ) -> Option<Vec<ContainerView>> {
        let list = self.containers.get_mut(agent_id)?;
        let at = list.iter().position(|c| c.id == container_id);
        match (at, row) {
            (Some(i), Some(row)) => list[i] = row,
            (None, Some(row)) => list.push(row),
            (Some(i), None) => {
                list.remove(i);
            }
            (None, None) => {}
        }
        Some(list.clone())
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
            .fold((0, 0), |(r, t), list| {
                let running = list.iter().filter(|c| c.state == "running").count();
                (r + running, t + list.len())
            });
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
        named("x", state)
    }

    fn named(id: &str, state: &str) -> ContainerView {
        ContainerView {
            id: id.into(),
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

    #[test]
    fn events_patch_a_loaded_list_only() {
        let mut fleet = Fleet::default();
        fleet.set_agents(&[agent("a", true)]);
        assert_eq!(fleet.apply("a", "web", Some(named("web", "exited"))), None);
        fleet.set_containers("a", &[named("web", "running"), named("db", "running")]);
        let list = fleet
            .apply("a", "web", Some(named("web", "exited")))
            .unwrap();
        assert_eq!(list[0].state, "exited");
        let list = fleet
            .apply("a", "new", Some(named("new", "created")))
            .unwrap();
        assert_eq!(list.len(), 3);
        let list = fleet.apply("a", "db", None).unwrap();
        assert_eq!(
            list.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["web", "new"]
        );
        assert_eq!(
            fleet.summary(),
            "1 of 1 agents online · 0 of 2 containers running"
        );
    }
}
