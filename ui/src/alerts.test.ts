// Alerts and mutes against a mocked Tauri IPC (the only thing mocked): the header badge counts
// unseen alerts from the backend's pushes, opening the list marks them seen, the tray's "show"
// opens it, and an agent is muted from its row or its page without opening it.
import { emit } from '@tauri-apps/api/event';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from './lib/app.svelte';
import type { AlertView, AlertsState } from './lib/backend';
import { agent, freshAppEachTest, launchToAgents, mockBackend } from './test-backend';

const agents = [
  agent('a1', 'eu-1', { dockerVersion: '28.2.2' }),
  agent('a2', 'us-2', { online: false, dockerVersion: '27.0.1' }),
];

const alert = (id: number, agentId: string, agentName: string, muted = false): AlertView => ({
  id, at: 1_800_000_000, kind: 'crashed', agentId, agentName, container: 'web',
  title: `web stopped on ${agentName}`, body: 'Container web exited with code 137 without a stop from ZedOps; check its logs.',
  muted, seen: muted,
});

function fakeBackend(options: { muteError?: { code: string; message: string } } = {}) {
  const state: AlertsState = { alerts: [], unseen: 0, mutedAgents: ['a2'] };
  const calls = mockBackend('alice', 'viewer', async (cmd, a) => {
    switch (cmd) {
      case 'list_agents': return agents;
      case 'list_containers':
        return a.agentId === 'a1'
          ? [{ id: 'w'.repeat(64), name: 'web', image: 'busybox', state: 'exited', status: 'Exited (137) 1 second ago', created: 1_700_000_000, ports: [], health: null }]
          : [];
      case 'inspect_container': throw { code: 'CONTAINER_NOT_FOUND', message: 'gone' };
      case 'watch_logs':
      case 'watch_stats': return 1;
      case 'close_watch': return null;
      case 'alert_state': return state;
      case 'mark_alerts_seen':
        state.alerts = state.alerts.map((x) => ({ ...x, seen: true }));
        state.unseen = 0;
        return state;
      case 'set_agent_muted': {
        if (options.muteError) throw options.muteError;
        const id = a.agentId as string;
        state.mutedAgents = a.muted ? [...state.mutedAgents, id] : state.mutedAgents.filter((m) => m !== id);
        return state;
      }
    }
  });
  return { calls, state };
}

const agentRow = (name: string) => screen.getAllByTestId('agent-row').find((r) => r.dataset.agentName === name)!;

describe('alerts', () => {
  freshAppEachTest();

  it('counts unseen alerts in the header and marks them seen when the list opens', async () => {
    const backend = fakeBackend();
    await launchToAgents();
    const badge = screen.getByTestId('alerts-badge');
    expect(screen.queryByTestId('alerts-count')).toBeNull();

    const pushed: AlertsState = { alerts: [alert(2, 'a1', 'eu-1'), alert(1, 'a2', 'us-2', true)], unseen: 1, mutedAgents: ['a2'] };
    backend.state.alerts = pushed.alerts;
    backend.state.unseen = 1;
    await emit('alerts-changed', { state: pushed, reveal: false });
    await waitFor(() => expect(screen.getByTestId('alerts-count')).toHaveTextContent('1'));

    await fireEvent.click(badge);
    const items = await screen.findAllByTestId('alert-item');
    expect(items.map((i) => [i.dataset.agentName, i.dataset.muted])).toEqual([['eu-1', 'false'], ['us-2', 'true']]);
    expect(items[0]).toHaveTextContent('web stopped on eu-1');
    expect(items[1]).toHaveTextContent('muted: no notification');
    expect(backend.calls.some(([cmd]) => cmd === 'mark_alerts_seen')).toBe(true);
    await waitFor(() => expect(screen.queryByTestId('alerts-count')).toBeNull());

    await fireEvent.click(screen.getByTestId('alerts-close'));
    expect(screen.queryByTestId('alerts-panel')).toBeNull();
  });

  it("opens an alert's container from the list", async () => {
    fakeBackend();
    await launchToAgents();
    await emit('alerts-changed', { state: { alerts: [alert(1, 'a1', 'eu-1'), alert(2, 'a2', 'us-2')], unseen: 2, mutedAgents: [] }, reveal: false });
    await fireEvent.click(screen.getByTestId('alerts-badge'));
    // us-2 is offline and its containers unknown: only eu-1's alert can open its container.
    const open = await screen.findAllByTestId('alert-open');
    expect(open).toHaveLength(1);
    await fireEvent.click(open[0]);
    expect(app.view).toEqual({ kind: 'container', agentId: 'a1', containerId: 'w'.repeat(64), from: 'agent' });
    expect(await screen.findByTestId('container-detail')).toHaveAttribute('data-container-name', 'web');
    expect(screen.queryByTestId('alerts-panel')).toBeNull();
  });

  it("opens the list when the tray's show asks", async () => {
    fakeBackend();
    await launchToAgents();
    await emit('alerts-changed', { state: { alerts: [alert(1, 'a1', 'eu-1')], unseen: 0, mutedAgents: [] }, reveal: true });
    expect(await screen.findByTestId('alerts-panel')).toBeInTheDocument();
    expect(screen.getAllByTestId('alert-item')).toHaveLength(1);
  });

  it('mutes an agent from its row without opening it, and from its page', async () => {
    const backend = fakeBackend();
    await launchToAgents();
    const eu = within(agentRow('eu-1')).getByTestId('mute-agent');
    expect(within(agentRow('us-2')).getByTestId('mute-agent')).toHaveAttribute('aria-pressed', 'true');
    expect(eu).toHaveAttribute('aria-pressed', 'false');
    await fireEvent.click(eu);
    await waitFor(() => expect(within(agentRow('eu-1')).getByTestId('mute-agent')).toHaveAttribute('aria-pressed', 'true'));
    expect(backend.calls.find(([cmd]) => cmd === 'set_agent_muted')![1]).toEqual({ agentId: 'a1', muted: true });
    expect(app.view.kind).toBe('agents');

    await fireEvent.click(agentRow('eu-1'));
    const onPage = await screen.findByTestId('mute-agent');
    expect(onPage).toHaveTextContent('Muted');
    await fireEvent.click(onPage);
    await waitFor(() => expect(screen.getByTestId('mute-agent')).toHaveAttribute('aria-pressed', 'false'));
    expect(backend.calls.filter(([cmd]) => cmd === 'set_agent_muted').at(-1)![1]).toEqual({ agentId: 'a1', muted: false });
  });

  it('says why a mute failed', async () => {
    fakeBackend({ muteError: { code: 'CONFIG_ERROR', message: 'Could not save the mute setting; check that the folder is writable.' } });
    await launchToAgents();
    await fireEvent.click(within(agentRow('eu-1')).getByTestId('mute-agent'));
    expect(await screen.findByTestId('toast')).toHaveTextContent('Could not mute eu-1: Could not save the mute setting');
    expect(within(agentRow('eu-1')).getByTestId('mute-agent')).toHaveAttribute('aria-pressed', 'false');
  });
});
