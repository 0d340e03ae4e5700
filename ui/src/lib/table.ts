// Pure helpers for the container tables: rows, filtering, sorting and formatting. Kept free of
// Svelte so they are cheap to test and fast on large fleets (one filter pass over precomputed
// lowercase text per keystroke).
import type { Action, ContainerView, PortView } from './backend';

export interface Row {
  /** `agentId/containerId`, unique across the fleet. */
  key: string;
  agentId: string;
  agentName: string;
  agentOnline: boolean;
  container: ContainerView;
  /** Lowercased name, image, status, agent, id and ports, for the text filter. */
  haystack: string;
  /** The ports as shown, formatted once per list (the filter text needs them anyway). */
  portsText: string;
}

export type SortKey = 'name' | 'image' | 'state' | 'status' | 'ports' | 'created' | 'agent';
export type SortDir = 'asc' | 'desc';

export interface Filter {
  text: string;
  /** A Docker state, or '' for all. */
  state: string;
  /** An agent id, or '' for all. */
  agent: string;
}

export const emptyFilter = (): Filter => ({ text: '', state: '', agent: '' });

export function makeRow(agentId: string, agentName: string, agentOnline: boolean, c: ContainerView): Row {
  const portsText = formatPorts(c.ports);
  const haystack = [c.name, c.image, c.status, c.state, agentName, c.id.slice(0, 12), portsText]
    .join('\u0000')
    .toLowerCase();
  return {
    key: `${agentId}/${c.id}`,
    agentId,
    agentName,
    agentOnline,
    container: c,
    haystack,
    portsText,
  };
}

export function filterRows(rows: Row[], f: Filter): Row[] {
  const words = f.text.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0 && !f.state && !f.agent) return rows;
  return rows.filter(
    (r) =>
      (!f.state || r.container.state === f.state) &&
      (!f.agent || r.agentId === f.agent) &&
      words.every((w) => r.haystack.includes(w)),
  );
}

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function sortValue(r: Row, key: SortKey): string | number {
  const c = r.container;
  switch (key) {
    case 'name': return c.name;
    case 'image': return c.image;
    case 'state': return c.state;
    case 'status': return c.status;
    case 'ports': return r.portsText;
    case 'created': return c.created;
    case 'agent': return r.agentName;
  }
}

export function sortRows(rows: Row[], key: SortKey, dir: SortDir): Row[] {
  const sign = dir === 'asc' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = sortValue(a, key);
    const y = sortValue(b, key);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : collator.compare(String(x), String(y));
    // Ties keep a stable, readable order: by name, then agent.
    return sign * order || collator.compare(a.container.name, b.container.name) || collator.compare(a.agentName, b.agentName);
  });
}

export function formatPorts(ports: PortView[]): string {
  return ports
    .map((p) =>
      p.publicPort != null
        ? `${p.ip && p.ip !== '0.0.0.0' && p.ip !== '::' ? `${p.ip}:` : ''}${p.publicPort}→${p.privatePort}/${p.protocol}`
        : `${p.privatePort}/${p.protocol}`,
    )
    .filter((text, i, all) => all.indexOf(text) === i)
    .join(', ');
}

/** `2024-05-01 14:03` in local time. */
export function formatCreated(seconds: number): string {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `just now`, `5 min ago`, `3 h ago`, `2 days ago`, or `never`. */
export function formatLastSeen(iso: string | null, now: number = Date.now()): string {
  if (!iso) return 'never';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86400);
  return `${days} day${days === 1 ? '' : 's'} ago`;
}

const ENABLED: Record<Action, readonly string[]> = {
  start: ['created', 'exited', 'dead'],
  stop: ['running', 'restarting', 'paused'],
  restart: ['running', 'paused', 'exited', 'created'],
};

/** Whether an action makes sense for a container in this Docker state. */
export function canAct(state: string, action: Action): boolean {
  return ENABLED[action].includes(state);
}

/** Colour family of a state: running is good, paused/restarting/created are in between. */
export function stateTone(state: string): 'ok' | 'warn' | 'bad' | 'idle' {
  switch (state) {
    case 'running': return 'ok';
    case 'paused':
    case 'restarting':
    case 'created':
    case 'removing': return 'warn';
    case 'dead': return 'bad';
    default: return 'idle';
  }
}

export const STATES = ['running', 'paused', 'restarting', 'created', 'exited', 'dead', 'removing'] as const;
