// The whole UI against a mocked Tauri IPC (the only thing mocked): sign-in, agents, the
// container table with its per-row pending state, pushes updating rows, and the fleet filter.
import { emit } from '@tauri-apps/api/event';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import App from './App.svelte';
import { app } from './lib/app.svelte';
import type { ContainerView } from './lib/backend';
import { agent, containerRow, freshAppEachTest, launch, mockBackend } from './test-backend';

const container = (name: string, state: string): ContainerView => ({
  id: `${name}`.padEnd(64, 'f'),
  name,
  image: 'zedops-test/busybox:latest',
  state,
  status: state === 'running' ? 'Up 5 seconds' : 'Exited (0) 1 second ago',
  created: 1_700_000_000,
  ports: [],
  health: null,
});

const agents = [
  agent('a1', 'eu-1', { lastSeen: '2026-01-01T00:00:00Z', dockerVersion: '28.2.2' }),
  agent('a2', 'us-2', { lastSeen: '2026-01-01T00:00:00Z', dockerVersion: '27.0.1' }),
];

/** A fake backend: records calls; `container_action` waits until the test releases it. */
function fakeBackend(options: { signInError?: { code: string; message: string } } = {}) {
  const lists: Record<string, ContainerView[]> = {
    a1: [container('web', 'running'), container('db', 'exited')],
    a2: [container('cache', 'running')],
  };
  let release: (() => void) | null = null;
  const calls = mockBackend('alice', null, async (cmd, a) => {
    switch (cmd) {
      case 'sign_in':
        if (options.signInError) throw options.signInError;
        return { relay: 'http://127.0.0.1:7878', user: 'alice', role: 'operator', keyringWarning: null };
      case 'list_agents': return agents;
      case 'list_containers': return lists[a.agentId as string];
      case 'container_action': {
        await new Promise<void>((r) => (release = r));
        const agentId = a.agentId as string;
        lists[agentId] = lists[agentId].map((c) => (c.id === a.containerId ? { ...c, state: 'exited', status: 'Exited (0) just now' } : c));
        return { agentId, containerId: a.containerId, action: a.action, containers: lists[agentId] };
      }
      case 'sign_out': return null;
    }
  });
  return { calls, release: () => release?.() };
}

async function signIn() {
  await launch();
  await fireEvent.input(await screen.findByTestId('password'), { target: { value: 'secret' } });
  await fireEvent.click(screen.getByTestId('sign-in'));
  await screen.findAllByTestId('agent-row');
}

describe('App', () => {
  freshAppEachTest();

  it('signs in with the prefilled relay and never keeps the password in the form', async () => {
    const backend = fakeBackend();
    await signIn();
    const signInCall = backend.calls.find(([cmd]) => cmd === 'sign_in')!;
    expect(signInCall[1]).toEqual({ relay: 'http://127.0.0.1:7878', username: 'alice', password: 'secret' });
    const names = screen.getAllByTestId('agent-row').map((r) => r.dataset.agentName);
    expect(names).toEqual(['eu-1', 'us-2']);
    const eu = screen.getAllByTestId('agent-row')[0];
    expect(await within(eu).findByText('1 / 2')).toBeInTheDocument();
    expect(within(eu).getByText('28.2.2')).toBeInTheDocument();
  });

  it('shows why a sign-in failed', async () => {
    fakeBackend({ signInError: { code: 'UNAUTHORIZED', message: 'Login refused: check the user name and password' } });
    await launch();
    await fireEvent.input(await screen.findByTestId('password'), { target: { value: 'bad' } });
    await fireEvent.click(screen.getByTestId('sign-in'));
    expect(await screen.findByRole('alert')).toHaveTextContent('check the user name and password');
    expect(screen.getByTestId('password')).toHaveValue('');
  });

  it('runs an action once per row, shows it pending, then updates the row and toasts', async () => {
    const backend = fakeBackend();
    await signIn();
    await fireEvent.click(screen.getAllByTestId('agent-row')[0]);
    const web = containerRow('web');
    expect(web.dataset.state).toBe('running');
    expect(within(web).getByTestId('action-start')).toBeDisabled();
    expect(within(containerRow('db')).getByTestId('action-stop')).toBeDisabled();

    await fireEvent.click(within(web).getByTestId('action-stop'));
    await waitFor(() => expect(within(containerRow('web')).getByTestId('action-stop')).toBeDisabled());
    expect(within(containerRow('web')).getByTestId('action-stop')).toHaveTextContent('Stop…');
    await fireEvent.click(within(containerRow('web')).getByTestId('action-stop'));
    // The second click started nothing.
    expect(backend.calls.filter(([cmd]) => cmd === 'container_action')).toHaveLength(1);

    backend.release();
    await waitFor(() => expect(containerRow('web').dataset.state).toBe('exited'));
    expect(await screen.findByTestId('toast')).toHaveTextContent('Stopped web on eu-1');
    expect(within(containerRow('web')).getByTestId('action-start')).toBeEnabled();
  });

  it('updates rows from pushes without asking', async () => {
    fakeBackend();
    await signIn();
    await fireEvent.click(screen.getAllByTestId('agent-row')[0]);
    await emit('containers-updated', { agentId: 'a1', containers: [container('web', 'restarting')] });
    await waitFor(() => expect(containerRow('web').dataset.state).toBe('restarting'));
    await emit('agent-status-changed', { agentId: 'a1', name: 'eu-1', online: false, lastSeen: '2026-01-01T00:00:00Z' });
    await waitFor(() => expect(within(containerRow('web')).getByTestId('action-stop')).toBeDisabled());
  });

  it('shows every container in the fleet view, filtered by text', async () => {
    fakeBackend();
    await signIn();
    await fireEvent.click(screen.getByTestId('nav-fleet'));
    const names = () => screen.getAllByTestId('container-row').map((r) => r.dataset.containerName);
    await waitFor(() => expect(names()).toEqual(['cache', 'db', 'web']));
    expect(containerRow('cache').dataset.agentName).toBe('us-2');
    await fireEvent.input(screen.getByTestId('fleet-filter'), { target: { value: 'eu-1' } });
    expect(names()).toEqual(['db', 'web']);
    await fireEvent.change(screen.getByTestId('state-filter'), { target: { value: 'running' } });
    expect(names()).toEqual(['web']);
  });

  it('signs out back to the form', async () => {
    const backend = fakeBackend();
    await signIn();
    await fireEvent.click(screen.getByTestId('sign-out'));
    expect(await screen.findByTestId('sign-in')).toBeInTheDocument();
    expect(backend.calls.some(([cmd]) => cmd === 'sign_out')).toBe(true);
  });
});
