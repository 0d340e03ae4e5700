// The alerts the backend raised (crashes, OOM kills, failing health checks, agents offline past
// the grace period), how many are unseen, and which agents are muted. The backend owns them; this
// mirrors its pushes (see src-tauri/src/alerting.rs).
import * as backend from './backend';
import type { AlertsChanged, AlertsState, AlertView } from './backend';

export class AlertsModel {
  list = $state<AlertView[]>([]);
  unseen = $state(0);
  muted = $state<string[]>([]);
  /** The alert list is open. */
  open = $state(false);

  #unlisten: backend.Unlisten | null = null;

  /** Follows the backend's alert pushes (once). */
  async listen(): Promise<void> {
    if (!this.#unlisten) this.#unlisten = await backend.subscribeAlerts((e) => this.onChanged(e));
  }

  stop(): void {
    this.#unlisten?.();
    this.#unlisten = null;
  }

  /** The current state, after signing in. A failure only leaves the list empty until the next push. */
  async load(): Promise<void> {
    try {
      this.apply(await backend.alertState());
    } catch {
      // The next alert push carries the whole state.
    }
  }

  apply(state: AlertsState): void {
    this.list = state.alerts;
    this.unseen = state.unseen;
    this.muted = state.mutedAgents;
  }

  onChanged(e: AlertsChanged): void {
    this.apply(e.state);
    // The tray's "N alerts — show": the person wants the list.
    if (e.reveal) this.open = true;
  }

  isMuted(agentId: string): boolean {
    return this.muted.includes(agentId);
  }

  /** Mutes or unmutes an agent; resolves to the error message when it failed, else null. */
  async toggleMute(agentId: string): Promise<string | null> {
    try {
      this.apply(await backend.setAgentMuted(agentId, !this.isMuted(agentId)));
      return null;
    } catch (e) {
      return backend.toBackendError(e).message;
    }
  }

  /** Opens or closes the list; opening it marks the alerts seen. */
  async toggle(): Promise<void> {
    this.open = !this.open;
    if (this.open && this.unseen > 0) {
      try {
        this.apply(await backend.markAlertsSeen());
      } catch {
        // Still unseen: the badge stays, which is what it should say.
      }
    }
  }

  reset(): void {
    this.list = [];
    this.unseen = 0;
    this.muted = [];
    this.open = false;
  }
}

export const alerts = new AlertsModel();
