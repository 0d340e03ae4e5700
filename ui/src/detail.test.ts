// The container detail view against a mocked Tauri IPC (the only thing mocked): opened from
// the table, it shows the inspected container with secrets hidden, live stats charts fed by a
// channel, and a log viewer with search, pause and follow; leaving the view closes its watches.
import type { Channel } from '@tauri-apps/api/core';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from './lib/app.svelte';
import type { ContainerDetailView, ContainerView, LogBatch, StatsSample, StatsUpdate } from './lib/backend';
import { agent, freshAppEachTest, launch, mockBackend } from './test-backend';

const web: ContainerView = {
  id: 'c'.repeat(64),
  name: 'web',
  image: 'zedops-test/busybox:latest',
  state: 'running',
  status: 'Up 5 seconds',
  created: 1_700_000_000,
  ports: [],
  health: null,
};

const detail: ContainerDetailView = {
  id: web.id,
  name: 'web',
  image: 'zedops-test/busybox:latest',
  imageId: 'sha256:abc',
  command: ['/bin/sh', '-c', 'sleep 1000'],
  created: '2026-01-01T00:00:00Z',
  state: 'running',
  startedAt: '2026-01-01T00:00:01Z',
  finishedAt: null,
  exitCode: null,
  restartPolicy: 'unless-stopped',
  restartCount: 0,
  env: [
    { name: 'SERVER_NAME', value: 'pz-eu', masked: false },
    { name: 'ADMIN_PASSWORD', value: null, masked: true },
  ],
  mounts: [{ kind: 'bind', source: '/srv/pz', destination: '/data', readOnly: false }],
  ports: [],
  labels: [],
  health: null,
};

const sample = (secs: number, cpu: number): StatsSample => ({
  read: new Date(Date.UTC(2026, 0, 1, 0, 0, secs)).toISOString(),
  cpuPercent: cpu,
  memoryUsed: 64 * 1024 * 1024,
  memoryLimit: 2 * 1024 ** 3,
  memoryPercent: 3.1,
  netRx: secs * 1024,
  netTx: 0,
  blockRead: 0,
  blockWrite: 0,
  pids: 4,
});

function fakeBackend() {
  const channels: { logs?: Channel<LogBatch>; stats?: Channel<StatsUpdate> } = {};
  const calls = mockBackend('alice', 'operator', async (cmd, a) => {
    switch (cmd) {
      case 'list_agents':
        return [agent('a1', 'eu-1')];
      case 'list_containers': return [web];
      case 'inspect_container': return detail;
      case 'watch_logs': channels.logs = a.onBatch as Channel<LogBatch>; return 7;
      case 'watch_stats': channels.stats = a.onUpdate as Channel<StatsUpdate>; return 8;
      case 'close_watch': return null;
    }
  });
  return { calls, channels };
}

const lines = (...texts: string[]): LogBatch => ({
  lines: texts.map((text) => ({ text, stderr: text.startsWith('ERR'), truncated: false })),
  dropped: 0,
  end: null,
});

async function openWeb() {
  await launch();
  await fireEvent.click(await screen.findByTestId('nav-fleet'));
  await fireEvent.click(await screen.findByTestId('open-container'));
  return screen.findByTestId('container-detail');
}

describe('container detail', () => {
  freshAppEachTest();

  it('shows the inspected container with secret values hidden', async () => {
    const backend = fakeBackend();
    const view = await openWeb();
    expect(view.dataset.state).toBe('running');
    expect(await within(view).findByTestId('detail-image')).toHaveTextContent('zedops-test/busybox:latest');
    expect(within(view).getByTestId('detail-restart')).toHaveTextContent('unless-stopped');
    const env = within(view).getAllByTestId('env-row');
    expect(env.map((r) => [r.dataset.envName, r.dataset.masked])).toEqual([
      ['SERVER_NAME', 'false'],
      ['ADMIN_PASSWORD', 'true'],
    ]);
    expect(env[0]).toHaveTextContent('pz-eu');
    expect(env[1]).toHaveTextContent('hidden');
    expect(backend.calls.find(([c]) => c === 'inspect_container')?.[1]).toMatchObject({ agentId: 'a1', containerId: web.id });
  });

  it('draws live stats from the samples the watch sends', async () => {
    const backend = fakeBackend();
    const view = await openWeb();
    await waitFor(() => expect(backend.channels.stats).toBeDefined());
    backend.channels.stats!.onmessage({ sample: sample(0, 12.5), end: null });
    backend.channels.stats!.onmessage({ sample: sample(1, 50), end: null });
    await waitFor(() => expect(within(view).getByTestId('stats-cpu-value')).toHaveTextContent('50.0 %'));
    expect(within(view).getByTestId('stats-cpu').dataset.points).toBe('2');
    expect(within(view).getByTestId('stats-memory-value')).toHaveTextContent('64.0 MiB of 2.00 GiB');
    expect(within(view).getByTestId('stats-net-value')).toHaveTextContent('1.00 KiB/s');
    expect(within(view).getByTestId('stats-pids')).toHaveTextContent('4');
  });

  it('follows the log, searches it, pauses and resumes, and closes the watches on leaving', async () => {
    const backend = fakeBackend();
    const view = await openWeb();
    await fireEvent.click(within(view).getByTestId('tab-logs'));
    await waitFor(() => expect(backend.channels.logs).toBeDefined());
    backend.channels.logs!.onmessage(lines('Server started', 'Player joined: Ada', 'ERR disk almost full'));
    await waitFor(() => expect(within(view).getAllByTestId('log-line')).toHaveLength(3));
    expect(within(view).getAllByTestId('log-line').map((l) => l.dataset.stream)).toEqual(['stdout', 'stdout', 'stderr']);

    await fireEvent.input(within(view).getByTestId('log-search'), { target: { value: 'player' } });
    const found = within(view).getAllByTestId('log-line');
    expect(found).toHaveLength(1);
    expect(found[0].querySelector('mark')).toHaveTextContent('Player');
    expect(within(view).getByTestId('log-count')).toHaveTextContent('1 of 3 lines match');
    await fireEvent.input(within(view).getByTestId('log-search'), { target: { value: '' } });

    await fireEvent.click(within(view).getByTestId('log-pause'));
    backend.channels.logs!.onmessage(lines('Player left: Ada'));
    await waitFor(() => expect(within(view).getByTestId('log-pause')).toHaveTextContent('Resume (1 new)'));
    expect(within(view).getAllByTestId('log-line')).toHaveLength(3);
    await fireEvent.click(within(view).getByTestId('log-pause'));
    await waitFor(() => expect(within(view).getAllByTestId('log-line')).toHaveLength(4));

    backend.channels.logs!.onmessage({ lines: [], dropped: 0, end: { code: null, reason: 'the container stopped' } });
    expect(await within(view).findByTestId('log-status')).toHaveTextContent('the container stopped');

    await fireEvent.click(within(view).getByTestId('detail-back'));
    await screen.findByTestId('fleet-filter');
    await waitFor(() => expect(backend.calls.filter(([c]) => c === 'close_watch').map(([, a]) => a.id)).toContain(8));
  });
});
