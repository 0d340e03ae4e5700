// The backend module against a mocked Tauri IPC: argument names, error shapes, events.
import { emit } from '@tauri-apps/api/event';
import { mockIPC } from '@tauri-apps/api/mocks';
import { describe, expect, it } from 'vitest';
import * as backend from './backend';

describe('backend', () => {
  it('invokes the commands with the argument names Rust expects', async () => {
    const calls: [string, unknown][] = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === 'sign_in') return { relay: 'http://127.0.0.1:7878', user: 'alice', role: 'operator', keyringWarning: null };
      if (cmd === 'container_action') return { agentId: 'a1', containerId: 'web', action: 'stop', containers: [] };
      return null;
    });
    const session = await backend.signIn('http://127.0.0.1:7878', 'alice', 'pw');
    expect(session.user).toBe('alice');
    await backend.containerAction('a1', 'web', 'stop');
    await backend.listContainers('a1');
    expect(calls).toEqual([
      ['sign_in', { relay: 'http://127.0.0.1:7878', username: 'alice', password: 'pw' }],
      ['container_action', { agentId: 'a1', containerId: 'web', action: 'stop' }],
      ['list_containers', { agentId: 'a1' }],
    ]);
  });

  it('turns a rejected command into a BackendError with code and message', async () => {
    mockIPC(() => {
      throw { code: 'AGENT_OFFLINE', message: 'Agent eu-1 is not connected' };
    });
    const err = await backend.listAgents().catch((e) => e);
    expect(err).toBeInstanceOf(backend.BackendError);
    expect(err.code).toBe('AGENT_OFFLINE');
    expect(err.message).toBe('Agent eu-1 is not connected');
  });

  it('turns a framework failure (a plain string) into an INTERNAL error that says what to do', () => {
    const err = backend.toBackendError('command sign_in not found');
    expect(err.code).toBe('INTERNAL');
    expect(err.message).toContain('command sign_in not found');
    expect(err.message).toContain('Restart ZedOps');
  });

  it('delivers pushed events to the subscriber until unsubscribed', async () => {
    mockIPC(() => null, { shouldMockEvents: true });
    const seen: string[] = [];
    const off = await backend.subscribe({
      containersUpdated: (e) => seen.push(`containers ${e.agentId} ${e.containers.length}`),
      agentStatusChanged: (e) => seen.push(`status ${e.name} ${e.online}`),
      connectionChanged: (e) => seen.push(`connection ${e.connected}`),
    });
    await emit('containers-updated', { agentId: 'a1', containers: [] });
    await emit('agent-status-changed', { agentId: 'a1', name: 'eu-1', online: false, lastSeen: null });
    await emit('connection-changed', { connected: false, reason: 'x', signedOut: false });
    off();
    await emit('containers-updated', { agentId: 'a2', containers: [] });
    expect(seen).toEqual(['containers a1 0', 'status eu-1 false', 'connection false']);
  });
});
