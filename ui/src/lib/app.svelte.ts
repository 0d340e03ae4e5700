// The app's state and what people can do, shared by all components. Talks to Rust only through
// ./backend. Rows update from the backend's pushes (after actions, and on agent status), never
// from a timer.
import * as backend from './backend';
import type {
  Action,
  AgentStatusChanged,
  AgentView,
  ConnectionChanged,
  ContainerView,
  ContainersUpdated,
  LastLogin,
  SessionInfo,
} from './backend';
import { alerts } from './alerts.svelte';
import { imageUpdates } from './imageUpdates.svelte';
import { canOperate } from './deploy';
import { markOnce } from './marks';
import { makeRow, type Row } from './table';

export type Phase = 'starting' | 'signed-out' | 'signing-in' | 'signed-in';
export type View =
  | { kind: 'agents' }
  | { kind: 'agent'; agentId: string }
  | { kind: 'fleet' }
  /** One container's detail, logs and stats; `from` is where "Back" returns to. */
  | { kind: 'container'; agentId: string; containerId: string; from: 'agent' | 'fleet' }
  | { kind: 'add-server' }
  | { kind: 'audit' }
  /** "New container": deploy a template; `agentId` preselects the server (null: choose). */
  | { kind: 'deploy'; agentId: string | null; from: 'agent' | 'fleet' }
  /** One agent's images. */
  | { kind: 'images'; agentId: string }
  | { kind: 'templates' }
  /** "Update agents" (admins). */
  | { kind: 'updates' }
  /** This desk's settings: open at login, updates of the app. */
  | { kind: 'settings' };
export interface Toast {
  id: number;
  kind: 'success' | 'error' | 'info';
  text: string;
}

/** How long a toast stays up. */
export const TOAST_MS = 6000;
const PAST: Record<Action, string> = { start: 'Started', stop: 'Stopped', restart: 'Restarted' };

export class AppModel {
  phase = $state<Phase>('starting');
  session = $state<SessionInfo | null>(null);
  lastLogin = $state<LastLogin>({ relay: null, user: null });
  /** Shown on the sign-in form: why signing in (or staying signed in) failed. */
  signInError = $state<string | null>(null);
  view = $state<View>({ kind: 'agents' });
  agents = $state<AgentView[]>([]);
  agentsError = $state<string | null>(null);
  loadingAgents = $state(false);
  /** Containers by agent id, from the latest list or push. Raw (not deeply reactive): lists are
   * replaced whole, never edited in place, so reading a row's fields costs no reactive
   * bookkeeping (a filter keystroke reads every field of every row on screen). */
  containers = $state.raw<Record<string, ContainerView[]>>({});
  /** Why an agent's containers could not be listed, by agent id. */
  listErrors = $state<Record<string, string>>({});
  /** Actions in flight, by row key (`agentId/containerId`). */
  pending = $state<Record<string, Action>>({});
  toasts = $state<Toast[]>([]);
  connection = $state<{ connected: boolean; reason: string | null }>({ connected: true, reason: null });
  /** The container whose removal is being confirmed, if any. */
  removing = $state<{ agentId: string; container: ContainerView } | null>(null);

  #nextToast = 1;
  #unlisten: backend.Unlisten | null = null;

  /** Every container of every agent, one row each. */
  fleetRows: Row[] = $derived.by(() =>
    this.agents.flatMap((a) => (this.containers[a.id] ?? []).map((c) => makeRow(a.id, a.name, a.online, c))),
  );

  /** Admin screens (Add server, Audit) are shown to admins only; the relay enforces it anyway. */
  get isAdmin(): boolean {
    return this.session?.role === 'admin';
  }

  /** Deploying, pulling and removing: operators and admins (the relay enforces it anyway). */
  get canOperate(): boolean {
    return canOperate(this.session?.role);
  }

  agent(id: string): AgentView | undefined {
    return this.agents.find((a) => a.id === id);
  }

  /** Replaces one agent's list (the whole record, since it is not deeply reactive). */
  setContainers(agentId: string, list: ContainerView[]): void {
    this.containers = { ...this.containers, [agentId]: list };
  }

  /** A container as last listed or pushed (its live state), by agent and container id. */
  container(agentId: string, containerId: string): ContainerView | undefined {
    return this.containers[agentId]?.find((c) => c.id === containerId);
  }

  /** Opens a container's detail view from its table. */
  openContainer(agentId: string, containerId: string): void {
    this.view = { kind: 'container', agentId, containerId, from: this.view.kind === 'fleet' ? 'fleet' : 'agent' };
  }

  rowsOf(agentId: string): Row[] {
    const a = this.agent(agentId);
    return (this.containers[agentId] ?? []).map((c) => makeRow(agentId, a?.name ?? agentId, a?.online ?? false, c));
  }

  /** At launch: subscribe to pushes, then sign in silently from the keyring if possible. */
  async start(): Promise<void> {
    if (!this.#unlisten) {
      this.#unlisten = await backend.subscribe({
        containersUpdated: (e) => this.onContainersUpdated(e),
        agentStatusChanged: (e) => this.onAgentStatus(e),
        connectionChanged: (e) => this.onConnection(e),
      });
    }
    await alerts.listen();
    await imageUpdates.listen();
    try {
      this.lastLogin = await backend.lastLogin();
    } catch (e) {
      this.signInError = backend.toBackendError(e).message;
    }
    try {
      const session = await backend.resumeSession();
      if (session) return this.enter(session);
    } catch (e) {
      this.signInError = backend.toBackendError(e).message;
    }
    this.phase = 'signed-out';
  }

  /** Stops listening to pushes (the window is going away, or a test starts afresh). */
  stop(): void {
    this.#unlisten?.();
    this.#unlisten = null;
    alerts.stop();
    imageUpdates.stop();
  }

  async signIn(relay: string, username: string, password: string): Promise<void> {
    this.phase = 'signing-in';
    this.signInError = null;
    try {
      const session = await backend.signIn(relay, username, password);
      this.lastLogin = { relay, user: username };
      await this.enter(session);
      if (session.keyringWarning) this.toast('info', session.keyringWarning);
    } catch (e) {
      this.signInError = backend.toBackendError(e).message;
      this.phase = 'signed-out';
    }
  }

  async signOut(): Promise<void> {
    try {
      await backend.signOut();
      this.signInError = null;
    } catch (e) {
      this.signInError = backend.toBackendError(e).message;
    }
    this.reset();
  }

  /** Back to the signed-out state (also used by tests to start clean). */
  reset(): void {
    this.phase = 'signed-out';
    this.session = null;
    this.agents = [];
    this.containers = {};
    this.listErrors = {};
    this.pending = {};
    this.view = { kind: 'agents' };
    this.connection = { connected: true, reason: null };
    this.toasts = [];
    this.removing = null;
    alerts.reset();
    imageUpdates.reset();
  }

  private async enter(session: SessionInfo): Promise<void> {
    this.session = session;
    this.phase = 'signed-in';
    this.connection = { connected: true, reason: null };
    void alerts.load();
    void imageUpdates.load();
    await this.refresh();
    markOnce('zedops:containers-listed');
  }

  /** Lists the agents, then every online agent's containers at once. */
  async refresh(): Promise<void> {
    this.loadingAgents = true;
    try {
      this.agents = await backend.listAgents();
      this.agentsError = null;
    } catch (e) {
      this.agentsError = backend.toBackendError(e).message;
      return;
    } finally {
      this.loadingAgents = false;
    }
    await Promise.all(this.agents.filter((a) => a.online).map((a) => this.loadContainers(a.id)));
  }

  async loadContainers(agentId: string): Promise<void> {
    try {
      this.setContainers(agentId, await backend.listContainers(agentId));
      delete this.listErrors[agentId];
    } catch (e) {
      this.listErrors[agentId] = backend.toBackendError(e).message;
    }
  }

  isPending(agentId: string, containerId: string): boolean {
    return `${agentId}/${containerId}` in this.pending;
  }

  /** Runs an action on one row; a second click while it runs does nothing. */
  async act(agentId: string, container: ContainerView, action: Action): Promise<void> {
    const key = `${agentId}/${container.id}`;
    if (key in this.pending) return;
    this.pending[key] = action;
    const where = this.agent(agentId)?.name ?? agentId;
    try {
      const outcome = await backend.containerAction(agentId, container.id, action);
      if (outcome.containers) this.setContainers(agentId, outcome.containers);
      this.toast('success', `${PAST[action]} ${container.name} on ${where}`);
    } catch (e) {
      const err = backend.toBackendError(e);
      this.toast('error', `Could not ${action} ${container.name} on ${where}: ${err.message}`);
    } finally {
      delete this.pending[key];
    }
  }

  /** Opens the confirmation of a container's removal. */
  askRemove(agentId: string, container: ContainerView): void {
    this.removing = { agentId, container };
  }

  /** Removes the container being confirmed: null when it is gone, else why not (for the
   * dialog). Its detail view, if open, goes back to where it came from. */
  async remove(force: boolean, volumes: boolean): Promise<string | null> {
    const target = this.removing;
    if (!target) return null;
    const { agentId, container } = target;
    const where = this.agent(agentId)?.name ?? agentId;
    try {
      await backend.removeContainer(agentId, container.id, force, volumes);
    } catch (e) {
      return `Could not remove ${container.name} from ${where}: ${backend.toBackendError(e).message}`;
    }
    this.removing = null;
    this.setContainers(agentId, (this.containers[agentId] ?? []).filter((c) => c.id !== container.id));
    this.toast('success', `Removed ${container.name} from ${where}`);
    const v = this.view;
    if (v.kind === 'container' && v.agentId === agentId && v.containerId === container.id)
      this.view = v.from === 'fleet' ? { kind: 'fleet' } : { kind: 'agent', agentId };
    return null;
  }

  toast(kind: Toast['kind'], text: string): void {
    const id = this.#nextToast++;
    this.toasts.push({ id, kind, text });
    setTimeout(() => this.dismiss(id), TOAST_MS);
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }

  onContainersUpdated(e: ContainersUpdated): void {
    if (this.phase !== 'signed-in') return;
    this.setContainers(e.agentId, e.containers);
    delete this.listErrors[e.agentId];
  }

  onAgentStatus(e: AgentStatusChanged): void {
    if (this.phase !== 'signed-in') return;
    const agent = this.agent(e.agentId);
    if (!agent) {
      // A new agent enrolled: the full list has its details.
      void this.refresh();
      return;
    }
    agent.online = e.online;
    agent.lastSeen = e.lastSeen;
    // Coming back, its containers arrive as a ContainersUpdated push from the backend.
  }

  onConnection(e: ConnectionChanged): void {
    if (this.phase !== 'signed-in') return;
    if (e.signedOut) {
      this.reset();
      this.signInError = e.reason;
      return;
    }
    const wasDown = !this.connection.connected;
    this.connection = { connected: e.connected, reason: e.reason };
    // Pushes may have been missed while the connection was down (or the backend fell behind).
    if (e.connected && (wasDown || e.reason !== null)) void this.refresh();
  }

  go(view: View): void {
    this.view = view;
  }
}

export const app = new AppModel();
