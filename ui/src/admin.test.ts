// The admin screens against a mocked Tauri IPC (the only thing mocked): "Add server" shows the
// install command with its expiry and copies it; the audit view lists, filters and reloads; both
// are only offered to admins.
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it, vi } from 'vitest';
import { app } from './lib/app.svelte';
import type { AuditEntry } from './lib/backend';
import { agent, freshAppEachTest, launchToAgents, mockBackend } from './test-backend';

const agents = [
  agent('a1', 'eu-1', { dockerVersion: '28.2.2' }),
  agent('a2', 'us-2', { dockerVersion: '27.0.1' }),
];
const webId = 'w'.repeat(64);
const entry = (id: string, agentId: string, container: string | null, operation: string, result: string, errorCode: string | null = null): AuditEntry => ({
  id, at: '2026-11-23T12:00:00Z', user: 'alice', agentId, container, operation, result, errorCode,
});

function fakeBackend(role: string) {
  let audit: AuditEntry[] = [
    entry('3', 'a1', webId, 'stop', 'ok'),
    entry('2', 'a2', 'cache', 'restart', 'failed', 'DOCKER_RESTART_FAILED'),
    entry('1', 'a1', 'db', 'stop', 'forbidden', 'FORBIDDEN'),
  ];
  const calls = mockBackend('alice', role, async (cmd, a) => {
    switch (cmd) {
      case 'list_agents': return agents;
      case 'list_containers':
        return a.agentId === 'a1'
          ? [{ id: webId, name: 'web', image: 'busybox', state: 'exited', status: 'Exited', created: 1, ports: [], health: null }]
          : [];
      case 'create_registration_token': {
        const url = (a.publicUrl as string | null) ?? 'http://127.0.0.1:7878';
        if (url.includes(' ')) throw { code: 'INVALID_INPUT', message: 'The relay address cannot go into the install command.' };
        return {
          token: 'zr_abc', expiresAt: '2026-11-23T13:00:00Z', publicUrl: url,
          installCommand: `curl -fsSL ${url}/install.sh | ZEDOPS_TOKEN=zr_abc sh`,
          loopback: url.includes('127.0.0.1'),
        };
      }
      case 'list_audit':
        return a.agentId ? audit.filter((e) => e.agentId === a.agentId) : audit;
    }
  });
  return { calls, setAudit: (next: AuditEntry[]) => (audit = next) };
}

async function start(role: string) {
  const backend = fakeBackend(role);
  await launchToAgents();
  return backend;
}

describe('admin screens', () => {
  freshAppEachTest();

  it('are not offered to operators and viewers', async () => {
    await start('operator');
    expect(screen.queryByTestId('nav-add-server')).toBeNull();
    expect(screen.queryByTestId('nav-audit')).toBeNull();
    // Reached anyway (an old view), they explain instead of calling the relay.
    app.go({ kind: 'add-server' });
    expect(await screen.findByTestId('admin-only')).toHaveTextContent('Only admins can add servers');
  });

  it('Add server shows the install command, its expiry and copies it', async () => {
    const backend = await start('admin');
    const writeText = vi.fn(async (_: string) => {});
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    await fireEvent.click(screen.getByTestId('nav-add-server'));
    await fireEvent.change(screen.getByTestId('token-ttl'), { target: { value: '3600' } });
    await fireEvent.click(screen.getByTestId('create-token'));
    const command = await screen.findByTestId('install-command');
    expect(command).toHaveTextContent('curl -fsSL http://127.0.0.1:7878/install.sh | ZEDOPS_TOKEN=zr_abc sh');
    expect(backend.calls.find(([c]) => c === 'create_registration_token')![1]).toEqual({ ttlSecs: 3600, publicUrl: 'http://127.0.0.1:7878' });
    expect(screen.getByTestId('token-expiry').dataset.expiresAt).toBe('2026-11-23T13:00:00Z');
    expect(screen.getByTestId('loopback-warning')).toHaveTextContent('other servers cannot reach it');

    await fireEvent.click(screen.getByTestId('copy-install-command'));
    await waitFor(() => expect(writeText).toHaveBeenCalledWith('curl -fsSL http://127.0.0.1:7878/install.sh | ZEDOPS_TOKEN=zr_abc sh'));
    expect(screen.getByTestId('copy-install-command')).toHaveTextContent('Copied');

    // Another address: the command uses it, and the loopback warning goes.
    await fireEvent.input(screen.getByTestId('public-url'), { target: { value: 'https://relay.example.com' } });
    await fireEvent.click(screen.getByTestId('create-token'));
    await waitFor(() => expect(screen.getByTestId('install-command')).toHaveTextContent('https://relay.example.com/install.sh'));
    expect(screen.queryByTestId('loopback-warning')).toBeNull();

    // A refusal is shown as the backend's sentence.
    await fireEvent.input(screen.getByTestId('public-url'), { target: { value: 'relay example' } });
    await fireEvent.click(screen.getByTestId('create-token'));
    expect(await screen.findByTestId('add-server-error')).toHaveTextContent('cannot go into the install command');
  });

  it('the audit view lists entries with names, filters by agent and reloads', async () => {
    const backend = await start('admin');
    await waitFor(() => expect(app.containers.a1).toBeDefined());
    await fireEvent.click(screen.getByTestId('nav-audit'));
    await waitFor(() => expect(screen.getAllByTestId('audit-row')).toHaveLength(3));
    const [stop, restart] = screen.getAllByTestId('audit-row');
    // The container id the log keeps shows as the container's name, the agent id as its name.
    expect(within(stop).getByText('web')).toBeInTheDocument();
    expect(within(stop).getByText('eu-1')).toBeInTheDocument();
    expect(stop.dataset.operation).toBe('stop');
    expect(stop.dataset.result).toBe('ok');
    expect(within(restart).getByText('DOCKER_RESTART_FAILED')).toBeInTheDocument();

    await fireEvent.change(screen.getByTestId('audit-agent-filter'), { target: { value: 'a2' } });
    await waitFor(() => expect(screen.getAllByTestId('audit-row')).toHaveLength(1));
    expect(backend.calls.filter(([c]) => c === 'list_audit').at(-1)![1]).toEqual({ agentId: 'a2' });

    backend.setAudit([entry('4', 'a2', 'cache', 'start', 'ok'), entry('2', 'a2', 'cache', 'restart', 'failed', 'DOCKER_RESTART_FAILED')]);
    await fireEvent.click(screen.getByTestId('audit-reload'));
    await waitFor(() => expect(screen.getAllByTestId('audit-row')).toHaveLength(2));
    expect(screen.getAllByTestId('audit-row')[0].dataset.operation).toBe('start');
  });
});
