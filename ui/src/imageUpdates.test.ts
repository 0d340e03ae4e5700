// Image updates against a mocked Tauri IPC (the only thing mocked): the badge on a row with an
// update and the count in the fleet view (from the list at sign-in, then from a push), Update
// with its steps and, on a rollback, the reason and the new container's log lines in the
// detail; "Update all" with live rows and the summary.
import type { Channel } from '@tauri-apps/api/core';
import { emit } from '@tauri-apps/api/event';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from './lib/app.svelte';
import type { ContainerUpdateEvent, ContainerUpdateOutcome, ContainerView, FleetUpdateEvent, FleetUpdateSummary } from './lib/backend';
import { agent, containerRow, freshAppEachTest, launch, mockBackend } from './test-backend';

const container = (name: string): ContainerView => ({ id: name.repeat(64).slice(0, 64), name, image: 'reg:5000/pz:1', state: 'running', status: 'Up', created: 1, ports: [], health: null });
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const offer = (name: string) => ({ container: name, image: 'reg:5000/pz:1', currentDigest: digest('a'), newDigest: digest('b'), foundAt: 1, label: null });

function fakeBackend(role: string) {
  const pending: {
    update?: Channel<ContainerUpdateEvent>; finish?: (o: ContainerUpdateOutcome) => void;
    fleet?: Channel<FleetUpdateEvent>; fleetDone?: (s: FleetUpdateSummary) => void;
  } = {};
  const calls = mockBackend('otto', role, async (cmd, a) => {
    switch (cmd) {
      case 'list_agents': return [agent('a1', 'eu-1')];
      case 'list_containers': return [container('pz'), container('web'), container('db')];
      case 'list_image_updates': return [{ agentId: 'a1', checkedAt: 2, updates: [offer('pz')] }];
      case 'check_image_updates': return { agents: [{ agentId: 'a1', checkedAt: 3, updates: [offer('pz'), offer('web')] }], failed: [] };
      case 'update_container':
        pending.update = a.onEvent as Channel<ContainerUpdateEvent>;
        return new Promise((resolve) => { pending.finish = resolve; });
      case 'update_all_containers':
        pending.fleet = a.onEvent as Channel<FleetUpdateEvent>;
        return new Promise((resolve) => { pending.fleetDone = resolve; });
      case 'inspect_container': throw { code: 'CONTAINER_NOT_FOUND', message: 'gone' };
      case 'watch_stats': case 'watch_logs': return 1;
      case 'close_watch': return null;
      case 'alert_state': return { alerts: [], unseen: 0, mutedAgents: [] };
    }
  });
  return { calls, pending };
}

async function start(role: string) {
  const backend = fakeBackend(role);
  await launch();
  await fireEvent.click(screen.getByTestId('nav-fleet'));
  await waitFor(() => expect(screen.getAllByTestId('container-row')).toHaveLength(3));
  return backend;
}

describe('image updates', () => {
  freshAppEachTest();

  it('badges the rows with an update and counts them, from the list and from pushes and checks', async () => {
    await start('viewer');
    await waitFor(() => expect(within(containerRow('pz')).getByTestId('update-badge')).toBeInTheDocument());
    expect(within(containerRow('web')).queryByTestId('update-badge')).toBeNull();
    expect(screen.getByTestId('fleet-update-count').dataset.count).toBe('1');
    // A viewer sees the badge but has no Update, Check or Update all.
    expect(within(containerRow('pz')).queryByTestId('action-update')).toBeNull();
    expect(screen.queryByTestId('check-updates')).toBeNull();
    // An agent's push replaces its list.
    await emit('image-updates-changed', { state: { agentId: 'a1', checkedAt: 4, updates: [offer('web'), offer('db')] } });
    await waitFor(() => expect(screen.getByTestId('fleet-update-count').dataset.count).toBe('2'));
    expect(within(containerRow('pz')).queryByTestId('update-badge')).toBeNull();
    expect(within(containerRow('db')).getByTestId('update-badge')).toBeInTheDocument();
  });

  it('Check for updates asks every agent and shows what it found', async () => {
    const backend = await start('operator');
    await fireEvent.click(screen.getByTestId('check-updates'));
    await waitFor(() => expect(screen.getByTestId('fleet-update-count').dataset.count).toBe('2'));
    expect(backend.calls.find(([c]) => c === 'check_image_updates')![1]).toMatchObject({ agentId: null });
    expect(await screen.findByText('2 containers have an image update.')).toBeInTheDocument();
  });

  it('Update shows its steps, and a rollback its reason and the log lines in the detail', async () => {
    const backend = await start('operator');
    await waitFor(() => expect(within(containerRow('pz')).getByTestId('action-update')).toBeEnabled());
    await fireEvent.click(within(containerRow('pz')).getByTestId('open-container'));
    await fireEvent.click(await screen.findByTestId('detail-update'));
    await waitFor(() => expect(backend.pending.update).toBeDefined());
    expect(backend.calls.find(([c]) => c === 'update_container')![1]).toMatchObject({ agentId: 'a1', container: 'pz' });
    backend.pending.update!.onmessage({ phase: 'pull', message: 'pulling', progress: { image: 'reg:5000/pz:1', current: 30, total: 100, layersDone: 0, layersTotal: 1 } });
    await waitFor(() => expect(screen.getByTestId('update-progress')).toHaveTextContent('Pulling the new image: 30 %'));
    expect(screen.getByTestId('detail-update')).toBeDisabled();
    backend.pending.finish!({
      result: 'rolled-back', message: 'The update of pz failed while waiting for the new container to be healthy (the new container exited with code 3), so ZedOps put the old container back: pz runs as before.',
      failedPhase: 'health', logs: ['broken build: missing config'], restored: true, containerId: null,
    });
    expect(await screen.findByTestId('update-rolled-back')).toHaveTextContent('pz runs as before');
    expect(screen.getByTestId('update-logs')).toHaveTextContent('broken build: missing config');
    // Still offered: the badge stays.
    expect(screen.getByTestId('detail-update-badge')).toBeInTheDocument();
  });

  it('Update all shows each container live and the summary', async () => {
    const backend = await start('operator');
    await waitFor(() => expect(screen.getByTestId('update-all-containers')).toBeEnabled());
    await fireEvent.click(screen.getByTestId('update-all-containers'));
    await fireEvent.click(await screen.findByTestId('fleet-update-start'));
    await waitFor(() => expect(backend.pending.fleet).toBeDefined());
    expect(backend.calls.find(([c]) => c === 'update_all_containers')![1]).toMatchObject({ agentId: null, canary: 1, parallel: 2 });
    const ev = (container: string, state: FleetUpdateEvent['state'], detail: string, logs: string[] = []): FleetUpdateEvent =>
      ({ agentId: 'a1', agentName: 'eu-1', container, state, canary: container === 'pz', detail, logs, progress: null });
    backend.pending.fleet!.onmessage({
      ...ev('pz', 'updating', 'Pulling pz:1.'),
      progress: { image: 'pz:1', current: 3_000_000, total: 12_000_000, layersDone: 1, layersTotal: 3 },
    });
    // The row shows how far the pull has come while it pulls, then the next step in words.
    const pulling = await screen.findByTestId('fleet-update-pull');
    expect(pulling).toHaveAttribute('value', '25');
    expect(pulling.closest('tr')).toHaveAttribute('data-pulled', '3000000/12000000');
    expect(pulling.closest('tr')).toHaveTextContent('1 of 3 layers');
    backend.pending.fleet!.onmessage(ev('pz', 'updating', 'Stopping the old container.'));
    await waitFor(() => expect(screen.queryByTestId('fleet-update-pull')).toBeNull());
    expect(screen.getAllByTestId('fleet-update-row')[0]).toHaveTextContent('Stopping the old container.');
    backend.pending.fleet!.onmessage(ev('web', 'queued', 'Waiting for its turn.'));
    await waitFor(() => expect(screen.getAllByTestId('fleet-update-row')).toHaveLength(2));
    expect(screen.getAllByTestId('fleet-update-row')[0]).toHaveTextContent('pz (canary)');
    backend.pending.fleet!.onmessage(ev('pz', 'rolled-back', 'The update of pz failed', ['boom']));
    backend.pending.fleet!.onmessage(ev('web', 'skipped', 'Not started: an earlier update rolled back or failed.'));
    await waitFor(() => expect(screen.getByTestId('fleet-update-tally')).toHaveTextContent('0 updated · 1 rolled back · 0 failed · 1 skipped'));
    backend.pending.fleetDone!({ updated: 0, rolledBack: 1, failed: 0, skipped: 1, message: '0 updated, 1 rolled back, 0 failed, 1 skipped.' });
    expect(await screen.findByTestId('fleet-update-summary')).toHaveTextContent('0 updated, 1 rolled back, 0 failed, 1 skipped.');
    expect(screen.getAllByTestId('fleet-update-row').find((r) => r.dataset.containerName === 'pz')).toHaveTextContent('boom');
  });
});
