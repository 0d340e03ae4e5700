// Synthetic fleets for the benchmark page (and tests): agents with plausible containers, the
// same for the same size every time, so runs compare.
import type { AgentView, ContainerView } from './backend';

const KINDS = ['zomboid', 'valheim', 'minecraft', 'web', 'db', 'cache', 'proxy', 'worker', 'backup', 'metrics'];
const IMAGES = ['zedops/zomboid:41.78', 'lloesche/valheim-server', 'itzg/minecraft-server:java21', 'nginx:1.27', 'postgres:16', 'redis:7', 'traefik:3.1', 'busybox:latest', 'restic/restic', 'prom/prometheus'];
const STATES = ['running', 'running', 'running', 'exited', 'running', 'created', 'running', 'paused', 'running', 'restarting'];
const REGIONS = ['eu', 'us', 'ap', 'sa'];

export function synthesize(total: number, perAgent = 100): { agents: AgentView[]; containers: Record<string, ContainerView[]> } {
  const agents: AgentView[] = [];
  const containers: Record<string, ContainerView[]> = {};
  const agentCount = Math.max(1, Math.ceil(total / perAgent));
  for (let a = 0; a < agentCount; a++) {
    const id = `agent-${String(a).padStart(4, '0')}`;
    const name = `${REGIONS[a % REGIONS.length]}-${a + 1}`;
    agents.push({ id, name, online: a % 17 !== 16, lastSeen: '2026-11-23T10:00:00Z', dockerVersion: '20.10.24', version: '0.1.0', os: 'linux', arch: 'x86_64', hostname: `${name}.example.net` });
    const list: ContainerView[] = [];
    for (let i = 0; i < perAgent && a * perAgent + i < total; i++) {
      const n = a * perAgent + i;
      const kind = n % KINDS.length;
      const state = STATES[(n * 7 + a) % STATES.length];
      list.push({
        id: (n.toString(16).padStart(8, '0') + 'c0ffee').repeat(5).slice(0, 64),
        name: `${KINDS[kind]}-${i + 1}`,
        image: IMAGES[kind],
        state,
        status: state === 'running' ? `Up ${1 + (n % 48)} hours` : state === 'exited' ? `Exited (${n % 3}) ${1 + (n % 9)} days ago` : state,
        created: 1_760_000_000 + n * 97,
        ports: kind < 4 ? [{ privatePort: 8000 + kind, publicPort: 20000 + n, protocol: kind === 0 ? 'udp' : 'tcp', ip: '0.0.0.0' }] : [],
        health: state === 'running' && kind === 4 ? 'healthy' : null,
      });
    }
    containers[id] = list;
  }
  return { agents, containers };
}
