// "Update agents" logic, apart from the component so it is tested on its own: comparing an
// agent's version with the one the relay offers, and which agents an "Update all" takes.
import type { AgentView } from './backend';

/** Compares dotted versions numerically (`0.10.0` > `0.9.1`); a pre-release (`1.0.0-rc.1`)
 * sorts before its release. Negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core, pre] = v.split(/-(.*)/s, 2);
    return { nums: core.split('+')[0].split('.').map((n) => Number.parseInt(n, 10) || 0), pre: pre ?? null };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return 1;
  if (y.pre === null) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export type VersionStanding = 'current' | 'behind' | 'ahead' | 'unknown';

/** Where an agent stands against the offered version. */
export function standing(version: string | null, offered: string | null): VersionStanding {
  if (!version || !offered) return 'unknown';
  const d = compareVersions(version, offered);
  return d === 0 ? 'current' : d < 0 ? 'behind' : 'ahead';
}

/** The agents "Update all" takes, in order: online and behind the offered version. */
export function updateTargets(agents: AgentView[], offered: string | null): AgentView[] {
  return agents.filter((a) => a.online && standing(a.version, offered) === 'behind');
}

// Image updates of containers (issue 15): the badges, one container's steps and "Update all".
import type {
  AgentImageUpdates,
  ContainerUpdateEvent,
  FleetItemState,
  FleetUpdateEvent,
  ImageUpdateView,
} from './backend';
import { progressPercent } from './deploy';

/** How updates, updates in flight and outcomes are keyed: `agentId/containerName`. */
export const updateKey = (agentId: string, container: string): string => `${agentId}/${container}`;

/** Every container with an update, by `agentId/containerName`. */
export function indexUpdates(states: Record<string, AgentImageUpdates>): Record<string, ImageUpdateView> {
  const index: Record<string, ImageUpdateView> = {};
  for (const state of Object.values(states)) {
    for (const u of state.updates) index[updateKey(state.agentId, u.container)] = u;
  }
  return index;
}

/** `sha256:0123456789ab`: enough of a digest to tell builds apart. */
export function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 19) : digest.slice(0, 12);
}

/** The badge's tooltip: which build runs and which is offered. */
export function updateTitle(u: ImageUpdateView): string {
  const label = u.label ? ` (labelled ${u.label})` : '';
  return `A newer build of ${u.image} is in the registry${label}: ${shortDigest(u.currentDigest)} runs, ${shortDigest(u.newDigest)} is offered.`;
}

const PHASE: Record<string, string> = {
  journal: 'Preparing',
  pull: 'Pulling the new image',
  hook: 'Running the pre-update hook',
  'rename-old': 'Stopping the old container',
  'stop-old': 'Stopping the old container',
  create: 'Creating the new container',
  start: 'Starting the new container',
  health: 'Waiting until the new container is healthy',
  'remove-old': 'Removing the old container',
  rollback: 'Putting the old container back',
};

/** One line for where an update is, e.g. "Pulling the new image: 40 %". */
export function stepText(e: ContainerUpdateEvent | null): string {
  if (!e) return 'Starting the update…';
  const what = PHASE[e.phase] ?? e.message;
  if (e.phase === 'pull' && e.progress) {
    const pct = progressPercent(e.progress);
    return pct === null ? `${what}…` : `${what}: ${pct} %`;
  }
  if (e.phase === 'hook') return `${what}: ${e.message}`;
  return `${what}…`;
}

/** "Update all" rows in order: updating first, then queued, then the finished and skipped. */
const ORDER: Record<FleetItemState, number> = { updating: 0, queued: 1, 'rolled-back': 2, failed: 3, updated: 4, skipped: 5 };

export function fleetRows(items: Record<string, FleetUpdateEvent>): FleetUpdateEvent[] {
  return Object.values(items).sort(
    (a, b) =>
      ORDER[a.state] - ORDER[b.state] ||
      Number(b.canary) - Number(a.canary) ||
      a.agentName.localeCompare(b.agentName) ||
      a.container.localeCompare(b.container),
  );
}

/** How many are in each state, for the live line above the rows. */
export function fleetTally(items: Record<string, FleetUpdateEvent>): Record<FleetItemState, number> {
  const tally: Record<FleetItemState, number> = { queued: 0, updating: 0, updated: 0, 'rolled-back': 0, failed: 0, skipped: 0 };
  for (const e of Object.values(items)) tally[e.state]++;
  return tally;
}

/** What "Update all" would take: containers with an update, minus `never` and `pinned`. */
export function updatableCount(index: Record<string, ImageUpdateView>): number {
  return Object.values(index).filter((u) => u.label !== 'never' && u.label !== 'pinned').length;
}
