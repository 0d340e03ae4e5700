// The Files tab's editor against a mocked Tauri IPC: a CRLF file with a BOM opens with its format
// named, an edit is saved back with both kept and the file's mode; a file changed on the server
// since it was opened is not written over until the user chooses Overwrite (or Reload); operators
// only view; large, binary and Latin-1 files are not opened for editing.
import { fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { EditorView } from 'codemirror';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import FilesTab from './lib/components/FilesTab.svelte';
import { app } from './lib/app.svelte';
import { base64ToBytes, bytesToBase64 } from './lib/console';
import type { ContainerView } from './lib/backend';
import { agent, mockBackend, stubResizeObserver } from './test-backend';

stubResizeObserver();

const web: ContainerView = { id: 'w'.repeat(64), name: 'web', image: 'busybox', state: 'running', status: 'Up', created: 1, ports: [], health: null };
const bytes = (s: string, bom = false) => new Uint8Array([...(bom ? [0xef, 0xbb, 0xbf] : []), ...new TextEncoder().encode(s)]);
const ORIGINAL = bytes('PVP=true\r\nMaxPlayers=32\r\n', true);

function fakeBackend(role: string, files: Record<string, Uint8Array>) {
  const entries = Object.entries(files).map(([name, b]) => ({ name, kind: 'file', size: b.length, mode: '0600', mtime: 1_700_000_000, linkTarget: null }));
  entries.push({ name: 'world.bin', kind: 'file', size: 5 * 1024 * 1024, mode: '0644', mtime: 1_700_000_000, linkTarget: null });
  const calls = mockBackend('ann', role, async (cmd, a) => {
    switch (cmd) {
      case 'list_agents':
        return [agent('a1', 'eu-1')];
      case 'list_containers': return a.agentId === 'a1' ? [web] : [];
      case 'inspect_container': throw { code: 'CONTAINER_NOT_FOUND', message: 'gone' };
      case 'watch_stats': case 'watch_logs': return 1;
      case 'close_watch': return null;
      case 'list_files': return { path: a.path, entries, truncated: false };
      case 'open_file_for_edit': {
        const b = files[String(a.path).slice(1)];
        if (!b) throw { code: 'FILE_NOT_FOUND', message: 'nothing there' };
        return { path: a.path, size: b.length, mtime: 1_700_000_000, mode: 0o600, data: bytesToBase64(b) };
      }
      case 'save_edited_file':
        files[String(a.path).slice(1)] = base64ToBytes(String(a.data));
        return { size: base64ToBytes(String(a.data)).length, mtime: 1_700_000_100 };
    }
  });
  return calls;
}

async function openFiles(role: string, files: Record<string, Uint8Array>) {
  const calls = fakeBackend(role, files);
  app.session = { relay: 'http://127.0.0.1:7878', user: 'ann', role, keyringWarning: null } as typeof app.session;
  render(FilesTab, { agentId: 'a1', containerId: web.id });
  await screen.findAllByTestId('file-row');
  return calls;
}

const row = (name: string) => screen.getAllByTestId('file-row').find((r) => r.dataset.name === name)!;

async function edit(name: string): Promise<EditorView> {
  await fireEvent.click(within(row(name)).getByTestId('file-edit'));
  await waitFor(() => expect(screen.getByTestId('file-editor').dataset.phase).toBe('open'));
  return await waitFor(() => {
    const view = EditorView.findFromDOM(screen.getByTestId('editor-text'));
    expect(view).toBeTruthy();
    return view!;
  });
}

/** Types over `from` as a person would, through the editor's own transactions. */
function replace(view: EditorView, from: string, to: string) {
  const at = view.state.doc.toString().indexOf(from);
  view.dispatch({ changes: { from: at, to: at + from.length, insert: to } });
}

describe('file editor', () => {
  beforeEach(() => app.reset());
  afterEach(() => app.reset());

  it('saves an edit with the BOM, CRLF and mode kept', async () => {
    const files = { 'server.ini': ORIGINAL };
    const calls = await openFiles('admin', files);
    const view = await edit('server.ini');
    expect(screen.getByTestId('editor-format')).toHaveTextContent('UTF-8 with BOM, CRLF (Windows) line endings');
    expect(view.state.doc.toString()).toBe('PVP=true\nMaxPlayers=32\n');
    expect(screen.getByTestId('editor-save')).toBeDisabled();
    replace(view, 'MaxPlayers=32', 'MaxPlayers=64');
    await fireEvent.click(screen.getByTestId('editor-save'));
    await waitFor(() => expect(calls.some(([c]) => c === 'save_edited_file')).toBe(true));
    const save = calls.find(([c]) => c === 'save_edited_file')![1];
    expect(save).toMatchObject({ agentId: 'a1', containerId: web.id, path: '/server.ini', mode: 0o600 });
    expect(base64ToBytes(String(save.data))).toEqual(bytes('PVP=true\r\nMaxPlayers=64\r\n', true));
    await waitFor(() => expect(screen.getByTestId('file-editor').dataset.dirty).toBe('false'));
    expect(app.toasts.map((t) => t.text)).toContain('Saved /server.ini');
  });

  it('says the file changed on the server and writes only on Overwrite; Reload shows the server version', async () => {
    const files: Record<string, Uint8Array> = { 'server.ini': ORIGINAL };
    const calls = await openFiles('admin', files);
    const view = await edit('server.ini');
    replace(view, 'MaxPlayers=32', 'MaxPlayers=64');
    files['server.ini'] = bytes('PVP=false\r\nMaxPlayers=32\r\n', true);
    await fireEvent.click(screen.getByTestId('editor-save'));
    expect(await screen.findByTestId('editor-conflict')).toHaveTextContent('/server.ini was changed on the server since you opened it');
    expect(calls.some(([c]) => c === 'save_edited_file')).toBe(false);
    await fireEvent.click(screen.getByTestId('editor-reload'));
    await waitFor(() => expect(view.state.doc.toString()).toBe('PVP=false\nMaxPlayers=32\n'));
    expect(screen.queryByTestId('editor-conflict')).toBeNull();

    replace(view, 'MaxPlayers=32', 'MaxPlayers=16');
    files['server.ini'] = bytes('changed again\n');
    await fireEvent.click(screen.getByTestId('editor-save'));
    await fireEvent.click(await screen.findByTestId('editor-overwrite'));
    await waitFor(() => expect(files['server.ini']).toEqual(bytes('PVP=false\r\nMaxPlayers=16\r\n', true)));

    // Deleted meanwhile: said so, Reload impossible.
    replace(view, 'PVP=false', 'PVP=true');
    delete files['server.ini'];
    await fireEvent.click(screen.getByTestId('editor-save'));
    expect(await screen.findByTestId('editor-conflict')).toHaveTextContent('was deleted on the server');
    expect(screen.getByTestId('editor-reload')).toBeDisabled();
  });

  it('operators view only; large, binary and non-UTF-8 files are not edited', async () => {
    await openFiles('operator', {
      'server.ini': ORIGINAL,
      'a.out': new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0]),
      'latin1.txt': new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]),
    });
    expect(within(row('world.bin')).queryByTestId('file-edit')).toBeNull();
    expect(within(row('world.bin')).getByText('download only')).toBeInTheDocument();
    expect(within(row('server.ini')).getByTestId('file-edit')).toHaveTextContent('View');
    const view = await edit('server.ini');
    expect(view.state.readOnly).toBe(true);
    expect(screen.queryByTestId('editor-save')).toBeNull();
    await fireEvent.click(screen.getByTestId('editor-close'));

    await fireEvent.click(within(await waitFor(() => row('a.out'))).getByTestId('file-edit'));
    expect(await screen.findByTestId('editor-error')).toHaveTextContent('looks binary');
    await fireEvent.click(screen.getByTestId('editor-close'));
    await fireEvent.click(within(await waitFor(() => row('latin1.txt'))).getByTestId('file-edit'));
    expect(await screen.findByTestId('editor-error')).toHaveTextContent('not UTF-8 text');
  });
});
