// Image updates of containers (issue 15): which containers have a newer image (listed at
// sign-in, then from the agents' pushes), one container's update in flight and how it ended,
// and "Update all" with each container's state live. The backend runs them; this mirrors them.
import * as backend from './backend';
import type {
  AgentImageUpdates,
  ContainerUpdateEvent,
  ContainerUpdateOutcome,
  FleetUpdateEvent,
  FleetUpdateSummary,
  ImageUpdateView,
} from './backend';
import { indexUpdates, updatableCount, updateKey } from './updates';

/** How one container's last update ended: the backend's outcome, or why it could not run. */
export type UpdateEnd = ContainerUpdateOutcome | { result: 'error'; message: string };

export class ImageUpdatesModel {
  /** By agent id, replaced whole (a push replaces one agent's list). */
  byAgent = $state.raw<Record<string, AgentImageUpdates>>({});
  /** Updates in flight by `agentId/containerName`: the last step (null before the first). */
  running = $state<Record<string, ContainerUpdateEvent | null>>({});
  /** How the last update of a container ended, by `agentId/containerName`. */
  ended = $state<Record<string, UpdateEnd>>({});
  checking = $state(false);
  checkError = $state<string | null>(null);
  /** "Update all": each container's state, the summary at the end. */
  fleet = $state<{ running: boolean; items: Record<string, FleetUpdateEvent>; summary: FleetUpdateSummary | null; error: string | null }>({
    running: false,
    items: {},
    summary: null,
    error: null,
  });

  index: Record<string, ImageUpdateView> = $derived(indexUpdates(this.byAgent));
  count: number = $derived(Object.keys(this.index).length);
  updatable: number = $derived(updatableCount(this.index));

  #unlisten: backend.Unlisten | null = null;

  async listen(): Promise<void> {
    if (!this.#unlisten) this.#unlisten = await backend.subscribeImageUpdates((e) => this.apply([e.state]));
  }

  stop(): void {
    this.#unlisten?.();
    this.#unlisten = null;
  }

  reset(): void {
    this.byAgent = {};
    this.running = {};
    this.ended = {};
    this.checking = false;
    this.checkError = null;
    this.fleet = { running: false, items: {}, summary: null, error: null };
  }

  /** The lists at sign-in; a failure leaves them empty until the next push. */
  async load(): Promise<void> {
    try {
      const list = await backend.listImageUpdates();
      if (Array.isArray(list)) this.apply(list);
    } catch {
      // The next check pushes the lists.
    }
  }

  apply(states: AgentImageUpdates[]): void {
    const next = { ...this.byAgent };
    for (const s of states) next[s.agentId] = s;
    this.byAgent = next;
  }

  forContainer(agentId: string, name: string): ImageUpdateView | undefined {
    return this.index[updateKey(agentId, name)];
  }

  isRunning(agentId: string, name: string): boolean {
    return updateKey(agentId, name) in this.running;
  }

  /** "Check for updates" on every connected agent; returns a sentence for a toast. */
  async check(): Promise<string> {
    if (this.checking) return '';
    this.checking = true;
    this.checkError = null;
    try {
      const checked = await backend.checkImageUpdates(null);
      this.apply(checked.agents);
      if (checked.failed.length) this.checkError = checked.failed.join(' ');
      const n = this.count;
      return n ? `${n} container${n === 1 ? ' has' : 's have'} an image update.` : 'Every container runs the newest build of its image.';
    } catch (e) {
      this.checkError = backend.toBackendError(e).message;
      return '';
    } finally {
      this.checking = false;
    }
  }

  /** Updates one container; a second click while it runs does nothing. */
  async update(agentId: string, name: string): Promise<UpdateEnd | null> {
    const key = updateKey(agentId, name);
    if (key in this.running) return null;
    this.running[key] = null;
    delete this.ended[key];
    let end: UpdateEnd;
    try {
      end = await backend.updateContainer(agentId, name, (e) => {
        if (key in this.running) this.running[key] = e;
      });
    } catch (e) {
      end = { result: 'error', message: backend.toBackendError(e).message };
    } finally {
      delete this.running[key];
    }
    this.ended[key] = end;
    if (end.result === 'updated' || end.result === 'unchanged') this.dropUpdate(agentId, name);
    return end;
  }

  /** Forgets a container's update once it is applied (the agent's fresh push follows). */
  private dropUpdate(agentId: string, name: string): void {
    const state = this.byAgent[agentId];
    if (!state) return;
    this.byAgent = { ...this.byAgent, [agentId]: { ...state, updates: state.updates.filter((u) => u.container !== name) } };
  }

  /** "Update all" over the fleet. */
  async updateAll(canary: number, parallel: number): Promise<FleetUpdateSummary | null> {
    if (this.fleet.running) return null;
    this.fleet = { running: true, items: {}, summary: null, error: null };
    try {
      const summary = await backend.updateAllContainers(null, canary, parallel, (e) => {
        this.fleet.items[updateKey(e.agentId, e.container)] = e;
        if (e.state === 'updated') this.dropUpdate(e.agentId, e.container);
      });
      this.fleet.summary = summary;
      return summary;
    } catch (e) {
      this.fleet.error = backend.toBackendError(e).message;
      return null;
    } finally {
      this.fleet.running = false;
    }
  }
}

export const imageUpdates = new ImageUpdatesModel();
