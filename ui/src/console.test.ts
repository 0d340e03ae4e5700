// The Console and Files tabs and "Update agents" against a mocked Tauri IPC (and, for the
// console, a stand-in for xterm.js, which needs a real browser): keystrokes and resizes reach
// the session, output is written and acked only once written, the session ends with the tab;
// files are listed, opened, downloaded, uploaded and deleted by role; updates show each agent.
import type { Channel } from '@tauri-apps/api/core';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { app } from './lib/app.svelte';
import type { AgentUpdateEvent, ConsoleEvent, ContainerView } from './lib/backend';
import { agent, freshAppEachTest, launch, mockBackend, stubResizeObserver } from './test-backend';

const written: { data: Uint8Array | string; done?: () => void }[] = [];
const handlers: { data?: (t: string) => void; resize?: (s: { cols: number; rows: number }) => void } = {};
vi.mock('./lib/terminal', () => ({
  createTerminal: () => ({
    cols: 100,
    rows: 30,
    write: (data: Uint8Array | string, done?: () => void) => written.push({ data, done }),
    onData: (h: (t: string) => void) => (handlers.data = h),
    onResize: (h: (s: { cols: number; rows: number }) => void) => (handlers.resize = h),
    fit: () => {},
    focus: () => {},
    dispose: () => {},
  }),
}));
stubResizeObserver();

const web: ContainerView = { id: 'w'.repeat(64), name: 'web', image: 'busybox', state: 'running', status: 'Up', created: 1, ports: [], health: null };
const entries = [
  { name: 'etc', kind: 'dir', size: 0, mode: '0755', mtime: 1_700_000_000, linkTarget: null },
  { name: 'server.ini', kind: 'file', size: 2048, mode: '0644', mtime: 1_700_000_000, linkTarget: null },
];

function fakeBackend(role: string) {
  const console: { channel?: Channel<ConsoleEvent> } = {};
  const update: { channel?: Channel<AgentUpdateEvent>; finish?: (n: number) => void } = {};
  const calls = mockBackend('ann', role, async (cmd, a) => {
    switch (cmd) {
      case 'list_agents':
        return [
          agent('a1', 'eu-1'),
          agent('a2', 'us-2', { version: '0.2.0' }),
        ];
      case 'list_containers': return a.agentId === 'a1' ? [web] : [];
      case 'inspect_container': throw { code: 'CONTAINER_NOT_FOUND', message: 'gone' };
      case 'watch_stats': case 'watch_logs': return 1;
      case 'close_watch': return null;
      case 'open_console': console.channel = a.onEvent as Channel<ConsoleEvent>; return 5;
      case 'console_input': case 'console_resize': case 'console_ack': case 'close_console': return null;
      case 'list_files':
        if (a.path === '/root') throw { code: 'FORBIDDEN', message: 'Permission denied reading /root: the agent cannot read it.' };
        return { path: a.path, entries: a.path === '/' ? entries : [], truncated: false };
      case 'download_file': return { path: '/home/ann/Downloads/server.ini', bytes: 2048 };
      case 'upload_file': case 'remove_file': case 'make_dir': return a.path;
      case 'offered_agent_version': return '0.2.0';
      case 'update_agents':
        update.channel = a.onEvent as Channel<AgentUpdateEvent>;
        return new Promise((resolve) => (update.finish = resolve));
    }
  });
  return { calls, console, update };
}

async function openWeb(role: string) {
  const backend = fakeBackend(role);
  await launch();
  await fireEvent.click(await screen.findByTestId('nav-fleet'));
  await fireEvent.click(await screen.findByTestId('open-container'));
  await screen.findByTestId('container-detail');
  return backend;
}

describe('console, files and updates', () => {
  freshAppEachTest();
  beforeEach(() => {
    written.length = 0;
  });

  it('a shell: sized at start, keystrokes and resizes sent, output acked once written, closed with the tab', async () => {
    const backend = await openWeb('admin');
    await fireEvent.click(screen.getByTestId('tab-console'));
    await fireEvent.change(screen.getByTestId('console-kind'), { target: { value: 'shell' } });
    await fireEvent.change(screen.getByTestId('console-shell'), { target: { value: '/bin/bash' } });
    await fireEvent.click(screen.getByTestId('console-connect'));
    await waitFor(() => expect(backend.console.channel).toBeDefined());
    expect(backend.calls.find(([c]) => c === 'open_console')![1]).toMatchObject({ agentId: 'a1', containerId: web.id, kind: 'shell', shell: '/bin/bash', cols: 100, rows: 30 });
    backend.console.channel!.onmessage({ started: true, data: null, exitCode: null, end: null });
    await waitFor(() => expect(screen.getByTestId('console-status').dataset.phase).toBe('open'));

    handlers.data!('ls\r');
    handlers.resize!({ cols: 120, rows: 40 });
    await waitFor(() => expect(backend.calls.some(([c]) => c === 'console_resize')).toBe(true));
    expect(backend.calls.find(([c]) => c === 'console_input')![1]).toEqual({ id: 5, text: 'ls\r' });
    expect(backend.calls.find(([c]) => c === 'console_resize')![1]).toEqual({ id: 5, cols: 120, rows: 40 });

    backend.console.channel!.onmessage({ started: null, data: 'aGkK', exitCode: null, end: null });
    await waitFor(() => expect(written).toHaveLength(1));
    expect(written[0].data).toEqual(new Uint8Array([104, 105, 10]));
    // Not acked until the terminal says it is on screen.
    expect(backend.calls.some(([c]) => c === 'console_ack')).toBe(false);
    written[0].done!();
    await waitFor(() => expect(backend.calls.find(([c]) => c === 'console_ack')![1]).toEqual({ id: 5, bytes: 3 }));

    await fireEvent.click(screen.getByTestId('tab-files'));
    await waitFor(() => expect(backend.calls.find(([c]) => c === 'close_console')![1]).toEqual({ id: 5 }));
  });

  it('operators get the game console only; a refusal or the end is said in words', async () => {
    const backend = await openWeb('operator');
    await fireEvent.click(screen.getByTestId('tab-console'));
    const kinds = within(screen.getByTestId('console-kind')).getAllByRole('option').map((o) => (o as HTMLOptionElement).value);
    expect(kinds).toEqual(['attach']);
    await fireEvent.click(screen.getByTestId('console-connect'));
    await waitFor(() => expect(backend.console.channel).toBeDefined());
    expect(backend.calls.find(([c]) => c === 'open_console')![1]).toMatchObject({ kind: 'attach', shell: null });
    backend.console.channel!.onmessage({ started: null, data: null, exitCode: null, end: { code: 'AGENT_OFFLINE', reason: 'The agent eu-1 went offline.' } });
    expect(await screen.findByTestId('console-error')).toHaveTextContent('The agent eu-1 went offline.');
    expect(screen.getByTestId('console-status').dataset.phase).toBe('ended');
  });

  it('viewers get neither a Console nor a Files tab', async () => {
    await openWeb('viewer');
    expect(screen.queryByTestId('tab-console')).toBeNull();
    expect(screen.queryByTestId('tab-files')).toBeNull();
  });

  it('files: browse, download; admins upload, make a folder and delete; errors in words', async () => {
    const backend = await openWeb('admin');
    await fireEvent.click(screen.getByTestId('tab-files'));
    const rows = await screen.findAllByTestId('file-row');
    expect(rows.map((r) => r.dataset.name)).toEqual(['etc', 'server.ini']);
    await fireEvent.click(within(rows[1]).getByTestId('file-download'));
    expect(await screen.findByText('Saved server.ini (2.00 KiB) to /home/ann/Downloads/server.ini')).toBeInTheDocument();
    expect(backend.calls.find(([c]) => c === 'download_file')![1]).toEqual({ agentId: 'a1', containerId: web.id, path: '/server.ini' });

    const file = new File([new Uint8Array([1, 2, 3])], 'mods.txt');
    await fireEvent.change(screen.getByTestId('files-upload-input'), { target: { files: [file] } });
    await waitFor(() => expect(backend.calls.find(([c]) => c === 'upload_file')?.[1]).toEqual({ agentId: 'a1', containerId: web.id, path: '/mods.txt', data: 'AQID' }));

    await fireEvent.click(screen.getByTestId('files-mkdir'));
    await fireEvent.input(screen.getByTestId('files-mkdir-name'), { target: { value: 'a/b' } });
    await fireEvent.click(screen.getByTestId('files-mkdir-create'));
    expect(await screen.findByTestId('files-error')).toHaveTextContent('may not contain "/"');
    await fireEvent.input(screen.getByTestId('files-mkdir-name'), { target: { value: 'backups' } });
    await fireEvent.click(screen.getByTestId('files-mkdir-create'));
    await waitFor(() => expect(backend.calls.find(([c]) => c === 'make_dir')?.[1]).toMatchObject({ path: '/backups' }));

    await fireEvent.click(within(screen.getAllByTestId('file-row')[1]).getByTestId('file-delete'));
    await fireEvent.click(screen.getByTestId('file-delete-confirm'));
    await waitFor(() => expect(backend.calls.find(([c]) => c === 'remove_file')?.[1]).toMatchObject({ path: '/server.ini' }));

    await fireEvent.click(within(screen.getAllByTestId('file-row')[0]).getByTestId('file-open'));
    await waitFor(() => expect(screen.getByTestId('files-tab').dataset.path).toBe('/etc'));
    expect(await screen.findByText('This directory is empty.')).toBeInTheDocument();
  });

  it('operators browse and download but do not change files', async () => {
    await openWeb('operator');
    await fireEvent.click(screen.getByTestId('tab-files'));
    await screen.findAllByTestId('file-row');
    expect(screen.queryByTestId('files-upload')).toBeNull();
    expect(screen.queryByTestId('files-mkdir')).toBeNull();
    expect(screen.queryByTestId('file-delete')).toBeNull();
    expect(screen.getByTestId('file-download')).toBeInTheDocument();
  });

  it('Update agents: versions against the offered one, all behind updated with live states', async () => {
    const backend = fakeBackend('admin');
    await launch();
    await fireEvent.click(await screen.findByTestId('nav-fleet'));
    await fireEvent.click(screen.getByTestId('update-agents'));
    expect(await screen.findByText('The relay offers agent 0.2.0')).toBeInTheDocument();
    const rows = screen.getAllByTestId('update-row');
    expect(rows.map((r) => [r.dataset.agentName, r.dataset.standing])).toEqual([['eu-1', 'behind'], ['us-2', 'current']]);
    expect(within(rows[1]).getByTestId('update-one')).toBeDisabled();
    await fireEvent.click(screen.getByTestId('update-all'));
    await waitFor(() => expect(backend.update.channel).toBeDefined());
    expect(backend.calls.find(([c]) => c === 'update_agents')![1]).toMatchObject({ agentIds: ['a1'], canary: 1, parallel: 5 });
    backend.update.channel!.onmessage({ agentId: 'a1', state: 'downloading', detail: 'Downloading: 1.0 of 4.0 MB.', bytes: 1_000_000, total: 4_000_000 });
    await waitFor(() => expect(screen.getAllByTestId('update-row')[0].dataset.state).toBe('downloading'));
    expect((screen.getByTestId('update-progress') as HTMLProgressElement).value).toBe(1_000_000);
    backend.update.channel!.onmessage({ agentId: 'a1', state: 'restarting', detail: '0.1.0 → 0.2.0 installed; restarting.', bytes: null, total: null });
    await waitFor(() => expect(screen.getAllByTestId('update-row')[0].dataset.state).toBe('restarting'));
    expect(screen.getAllByTestId('update-row')[0]).toHaveTextContent('0.1.0 → 0.2.0 installed');
    expect(screen.queryByTestId('update-progress')).toBeNull();
    backend.update.channel!.onmessage({ agentId: 'a1', state: 'online', detail: 'Online with 0.2.0.', bytes: null, total: null });
    backend.update.finish!(1);
    expect(await screen.findByText('Updated 1 agent to 0.2.0')).toBeInTheDocument();
  });

  it('Update agents is for admins only', async () => {
    fakeBackend('operator');
    await launch();
    await fireEvent.click(await screen.findByTestId('nav-fleet'));
    expect(screen.queryByTestId('update-agents')).toBeNull();
  });
});
