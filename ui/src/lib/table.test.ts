import { describe, expect, it } from 'vitest';
import type { ContainerView } from './backend';
import { canAct, filterRows, formatLastSeen, formatPorts, makeRow, sortRows, stateTone } from './table';

const c = (name: string, state: string, extra: Partial<ContainerView> = {}): ContainerView => ({
  id: `${name}-id`.padEnd(64, '0'),
  name,
  image: 'busybox:latest',
  state,
  status: state === 'running' ? 'Up 2 minutes' : 'Exited (0) 1 minute ago',
  created: 1_700_000_000,
  ports: [],
  health: null,
  ...extra,
});

const rows = [
  makeRow('a1', 'eu-1', true, c('web', 'running', { ports: [{ privatePort: 80, publicPort: 8080, protocol: 'tcp', ip: '0.0.0.0' }] })),
  makeRow('a1', 'eu-1', true, c('db', 'exited', { image: 'postgres:16', created: 1_600_000_000 })),
  makeRow('a2', 'us-2', true, c('web-2', 'running', { created: 1_800_000_000 })),
];

describe('filterRows', () => {
  it('matches every word against name, image, agent and ports', () => {
    const names = (text: string) => filterRows(rows, { text, state: '', agent: '' }).map((r) => r.container.name);
    expect(names('')).toEqual(['web', 'db', 'web-2']);
    expect(names('WEB')).toEqual(['web', 'web-2']);
    expect(names('postgres')).toEqual(['db']);
    expect(names('us-2 web')).toEqual(['web-2']);
    expect(names('8080')).toEqual(['web']);
    expect(names('nothing')).toEqual([]);
  });

  it('filters by state and agent', () => {
    expect(filterRows(rows, { text: '', state: 'exited', agent: '' }).map((r) => r.container.name)).toEqual(['db']);
    expect(filterRows(rows, { text: '', state: 'running', agent: 'a1' }).map((r) => r.container.name)).toEqual(['web']);
  });

  it('stays fast on a fleet of 5,000 containers', () => {
    const many = Array.from({ length: 5000 }, (_, i) => makeRow(`a${i % 50}`, `agent-${i % 50}`, true, c(`svc-${i}`, i % 3 ? 'running' : 'exited')));
    const started = performance.now();
    const hits = filterRows(many, { text: 'svc-42', state: '', agent: '' });
    const took = performance.now() - started;
    expect(hits.length).toBe(111);
    // A loose bound for a busy CI machine; the target (16 ms per keystroke) is far above typical runs.
    expect(took).toBeLessThan(200);
  });
});

describe('sortRows', () => {
  it('sorts by a column both ways, numbers numerically', () => {
    expect(sortRows(rows, 'name', 'asc').map((r) => r.container.name)).toEqual(['db', 'web', 'web-2']);
    expect(sortRows(rows, 'created', 'desc').map((r) => r.container.name)).toEqual(['web-2', 'web', 'db']);
    expect(sortRows(rows, 'agent', 'desc').map((r) => r.agentName)).toEqual(['us-2', 'eu-1', 'eu-1']);
  });
});

describe('formatting', () => {
  it('writes ports like docker ps', () => {
    expect(formatPorts([{ privatePort: 80, publicPort: 8080, protocol: 'tcp', ip: '0.0.0.0' }, { privatePort: 80, publicPort: 8080, protocol: 'tcp', ip: '::' }])).toBe('8080→80/tcp');
    expect(formatPorts([{ privatePort: 53, publicPort: null, protocol: 'udp', ip: null }])).toBe('53/udp');
    expect(formatPorts([{ privatePort: 22, publicPort: 2222, protocol: 'tcp', ip: '127.0.0.1' }])).toBe('127.0.0.1:2222→22/tcp');
  });

  it('says how long ago an agent was seen', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    expect(formatLastSeen(null, now)).toBe('never');
    expect(formatLastSeen('2026-01-01T11:59:30Z', now)).toBe('just now');
    expect(formatLastSeen('2026-01-01T11:55:00Z', now)).toBe('5 min ago');
    expect(formatLastSeen('2025-12-30T12:00:00Z', now)).toBe('2 days ago');
  });

  it('enables actions by state and colours states', () => {
    expect(canAct('running', 'stop')).toBe(true);
    expect(canAct('running', 'start')).toBe(false);
    expect(canAct('exited', 'start')).toBe(true);
    expect(canAct('exited', 'stop')).toBe(false);
    expect(canAct('running', 'restart')).toBe(true);
    expect(stateTone('running')).toBe('ok');
    expect(stateTone('exited')).toBe('idle');
    expect(stateTone('dead')).toBe('bad');
  });
});
