//! Turns the relay's pushes into UI events, tray updates and alerts, for one session.
//! The session subscribes to the whole fleet's container events, so every table updates from
//! pushes alone. An agent going offline is alerted only after a grace period (see `grace`).

mod alerts;
mod grace;
mod missed;

use std::time::Instant;

use tauri::async_runtime::JoinHandle;
use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use tokio::sync::broadcast::error::RecvError;
use zedops_client::{Client, ClientEvent, ContainerEvent};

use crate::alerting::{self, AlertKind, NewAlert};
use crate::events::{AgentStatusChanged, ConnectionChanged, ContainersUpdated};
use crate::state::AppState;
use crate::{image_updates, tray, types};

/// What the forwarder keeps between pushes.
struct Watch {
    alerts: alerts::Alerts,
    grace: grace::OfflineGrace,
    /// The image updates already shown, so each pushed batch notifies once.
    updates: image_updates::Announced,
}

pub fn spawn(app: AppHandle, client: Client) -> JoinHandle<()> {
    let mut events = client.events();
    tauri::async_runtime::spawn(async move {
        // Once: the client renews the subscription itself after a reconnect.
        if let Err(err) = client.subscribe(None).await {
            tracing::warn!(%err, "could not subscribe to container events; tables update after actions only");
        }
        let mut watch = Watch {
            alerts: alerts::Alerts::default(),
            grace: grace::OfflineGrace::new(grace::from_env()),
            updates: image_updates::Announced::default(),
        };
        // What is known at sign-in shows as badges; only later finds are announced.
        match client.updates(None).await {
            Ok(listed) => listed
                .agents
                .iter()
                .for_each(|a| watch.updates.seed(&a.state)),
            Err(err) => tracing::debug!(%err, "could not list the image updates"),
        }
        loop {
            // Wake for the next push, or when an agent's grace period runs out.
            let due = watch.grace.next_due();
            let wake = tokio::time::Instant::from_std(due.unwrap_or_else(Instant::now));
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => handle(&app, &client, &mut watch, event).await,
                    // Missed pushes: a fresh agent list in the UI sets things right.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed relay pushes");
                        let _ = ConnectionChanged {
                            connected: true,
                            reason: Some("missed updates from the relay; reloading".into()),
                            signed_out: false,
                        }
                        .emit(&app);
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(wake), if due.is_some() => {
                    still_offline(&app, &mut watch.grace, Instant::now());
                }
            }
        }
    })
}

/// Alerts the agents whose grace period ran out, unless a fresh agent list found them online
/// meanwhile (a push can be missed while the relay connection is down).
fn still_offline(app: &AppHandle, grace: &mut grace::OfflineGrace, now: Instant) {
    for (agent_id, name) in grace.due(now) {
        if app.state::<AppState>().fleet().online(&agent_id) == Some(true) {
            grace.online(&agent_id);
            continue;
        }
        alerting::raise(
            app,
            NewAlert {
                kind: AlertKind::Offline,
                title: format!("{name} is offline"),
                body: format!(
                    "Agent {name} lost its connection to the relay over {} s ago; its containers cannot be controlled until it is back. Check that zedops-agent runs on that server and can reach the relay.",
                    grace.grace().as_secs()
                ),
                agent_id,
                agent_name: name,
                container: None,
            },
        );
    }
}

async fn handle(app: &AppHandle, client: &Client, watch: &mut Watch, event: ClientEvent) {
    match event {
        ClientEvent::AgentStatus(status) => {
            let was = app.state::<AppState>().fleet().set_online(
                &status.agent_id,
                &status.name,
                status.online,
            );
            let _ = AgentStatusChanged::from(&status).emit(app);
            tray::refresh(app);
            if status.online {
                // Its return is news only if its going away was (a blip shorter than the grace
                // period said nothing, so there is nothing to take back).
                if watch.grace.online(&status.agent_id) {
                    alerting::raise(
                        app,
                        NewAlert {
                            kind: AlertKind::Online,
                            title: format!("{} is back online", status.name),
                            body: format!("Agent {} reconnected to the relay.", status.name),
                            agent_id: status.agent_id.to_string(),
                            agent_name: status.name.clone(),
                            container: None,
                        },
                    );
                }
            } else {
                if was == Some(true) {
                    // It was seen online since any earlier absence (a fresh agent list), so
                    // that absence is over: this is a new one with its own grace period.
                    watch.grace.online(&status.agent_id);
                }
                watch
                    .grace
                    .offline(&status.agent_id, &status.name, Instant::now());
            }
            if status.online {
                // Its containers may have changed while it was away.
                match client.containers(&status.agent_id).await {
                    Ok(list) => {
                        let containers = types::containers(list);
                        app.state::<AppState>()
                            .fleet()
                            .set_containers(&status.agent_id, &containers);
                        tray::refresh(app);
                        let _ = ContainersUpdated {
                            agent_id: status.agent_id.into(),
                            containers,
                        }
                        .emit(app);
                    }
                    Err(err) => {
                        tracing::warn!(%err, "could not list a returning agent's containers")
                    }
                }
            }
        }
        ClientEvent::Connected => {
            let _ = ConnectionChanged {
                connected: true,
                reason: None,
                signed_out: false,
            }
            .emit(app);
        }
        ClientEvent::Disconnected { reason, fatal } => {
            // The client stops reconnecting only when the relay refused the session or this
            // version, and then says which.
            let signed_out = fatal.is_some();
            let _ = ConnectionChanged {
                connected: false,
                reason: Some(reason),
                signed_out,
            }
            .emit(app);
        }
        ClientEvent::Error(reply) => tracing::warn!(%reply, "the relay reported an error"),
        ClientEvent::Container(event) => container_changed(app, &mut watch.alerts, *event),
        ClientEvent::Sync(sync) => {
            let containers = types::containers(sync.containers);
            let hidden = {
                let state = app.state::<AppState>();
                let mut fleet = state.fleet();
                let hidden = missed::hidden_events(
                    &sync.agent_id,
                    fleet.containers(&sync.agent_id),
                    &containers,
                );
                fleet.set_containers(&sync.agent_id, &containers);
                hidden
            };
            tray::refresh(app);
            let _ = ContainersUpdated {
                agent_id: sync.agent_id.into(),
                containers,
            }
            .emit(app);
            // Crashes the snapshot reveals (folded into it during a storm, or during a gap).
            for event in hidden {
                raise_alert(app, &mut watch.alerts, event);
            }
        }
        ClientEvent::Updates(state) => new_image_updates(app, &mut watch.updates, &state),
        ClientEvent::Resync { missed } => {
            // Dropped events: the UI reloads everything, as after a reconnect.
            tracing::warn!(missed, "the relay dropped container events; reloading");
            let _ = ConnectionChanged {
                connected: true,
                reason: Some("missed updates from the relay; reloading".into()),
                signed_out: false,
            }
            .emit(app);
        }
        _ => {}
    }
}

/// One container changed: its row is patched in place, and a crash, OOM kill or failing health
/// check raises an alert naming server and container.
fn container_changed(app: &AppHandle, alerts: &mut alerts::Alerts, event: ContainerEvent) {
    let row = event.container.clone().map(types::ContainerView::from);
    let updated = app
        .state::<AppState>()
        .fleet()
        .apply(&event.agent_id, &event.container_id, row);
    if let Some(containers) = updated {
        tray::refresh(app);
        let _ = ContainersUpdated {
            agent_id: event.agent_id.to_string(),
            containers,
        }
        .emit(app);
    }
    raise_alert(app, alerts, event);
}

/// The agent's name for an alert: as the fleet lists it, or its id when the list does not have
/// it (yet).
fn agent_name(app: &AppHandle, agent_id: &str) -> String {
    app.state::<AppState>()
        .fleet()
        .agent_name(agent_id)
        .unwrap_or(agent_id)
        .to_string()
}

/// Raises the alert `event` calls for, if any (flap suppression and mutes apply).
fn raise_alert(app: &AppHandle, alerts: &mut alerts::Alerts, event: ContainerEvent) {
    let agent = agent_name(app, &event.agent_id);
    if let Some(alert) = alerts.check(&agent, &event, Instant::now()) {
        alerting::raise(
            app,
            NewAlert {
                kind: alert.kind,
                agent_id: event.agent_id.into(),
                agent_name: agent,
                container: Some(event.name),
                title: alert.title,
                body: alert.body,
            },
        );
    }
}

/// An agent pushed its image updates: the UI's badges follow, and the containers that are news
/// are announced in one notification (an alert like an agent going offline; muted agents list
/// it without the popup).
fn new_image_updates(
    app: &AppHandle,
    announced: &mut image_updates::Announced,
    state: &zedops_protocol::UpdateState,
) {
    let _ = image_updates::ImageUpdatesChanged {
        state: state.into(),
    }
    .emit(app);
    let fresh = announced.fresh(state);
    if fresh.is_empty() {
        return;
    }
    let agent = agent_name(app, &state.agent_id);
    let (title, body) = image_updates::batch_notice(&agent, &fresh);
    alerting::raise(
        app,
        NewAlert {
            kind: AlertKind::Updates,
            agent_id: state.agent_id.to_string(),
            agent_name: agent,
            container: (fresh.len() == 1).then(|| fresh[0].container.clone()),
            title,
            body,
        },
    );
}
