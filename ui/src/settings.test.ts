// The Settings view against a mocked Tauri IPC (the only thing mocked): "Open at login" shows
// the state the backend reads from the system and toggles it; an app update is checked, shown,
// installed, and a refusal is shown as the backend's sentence.
import { fireEvent, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from './lib/app.svelte';
import { freshAppEachTest, launch, mockBackend } from './test-backend';

function fakeBackend(opts: { refuse?: boolean; loginFails?: boolean }) {
  let atLogin = false;
  const calls = mockBackend('alice', 'viewer', async (cmd, a) => {
    switch (cmd) {
      case 'list_agents': return [];
      case 'open_at_login': return atLogin;
      case 'set_open_at_login':
        if (opts.loginFails) throw { code: 'CONFIG_ERROR', message: 'Could not add ZedOps\'s entry among the programs started at login (denied).' };
        atLogin = a.enabled as boolean;
        return atLogin;
      case 'check_app_update':
        return { currentVersion: '0.1.0', available: { version: '0.2.0', notes: 'Faster lists' } };
      case 'install_app_update':
        if (opts.refuse) throw { code: 'UPDATE_REFUSED', message: "The update was refused: it is not signed with ZedOps's update key (bad signature). Nothing was installed." };
        return { version: '0.2.0' };
    }
    return null;
  });
  return calls;
}

async function open(opts: { refuse?: boolean; loginFails?: boolean } = {}) {
  const calls = fakeBackend(opts);
  await launch();
  await fireEvent.click(await screen.findByTestId('nav-settings'));
  return calls;
}

describe('settings view', () => {
  freshAppEachTest();

  it('turns "Open at login" on and off with the state read back', async () => {
    const calls = await open();
    const toggle = (await screen.findByTestId('open-at-login')) as HTMLInputElement;
    await waitFor(() => expect(toggle.disabled).toBe(false));
    expect(toggle.checked).toBe(false);
    await fireEvent.click(toggle);
    await waitFor(() => expect(toggle.getAttribute('aria-checked')).toBe('true'));
    expect(calls.find(([c]) => c === 'set_open_at_login')![1]).toEqual({ enabled: true });
    await fireEvent.click(toggle);
    await waitFor(() => expect(toggle.getAttribute('aria-checked')).toBe('false'));
  });

  it('shows why "Open at login" could not change', async () => {
    await open({ loginFails: true });
    const toggle = (await screen.findByTestId('open-at-login')) as HTMLInputElement;
    await waitFor(() => expect(toggle.disabled).toBe(false));
    await fireEvent.click(toggle);
    expect(await screen.findByTestId('open-at-login-error')).toHaveTextContent('programs started at login');
    expect(toggle.getAttribute('aria-checked')).toBe('false');
  });

  it('finds, installs and offers a restart', async () => {
    const calls = await open();
    await fireEvent.click(screen.getByTestId('check-app-update'));
    expect(await screen.findByTestId('app-update-version')).toHaveTextContent('0.2.0');
    expect(screen.getByText('Faster lists')).toBeInTheDocument();
    await fireEvent.click(screen.getByTestId('install-app-update'));
    await waitFor(() => expect(screen.getByTestId('app-update-status').dataset.state).toBe('installed'));
    expect(screen.getByTestId('app-update-status')).toHaveTextContent('ZedOps 0.2.0 is installed. Restart ZedOps to use it.');
    await fireEvent.click(screen.getByTestId('restart-app'));
    await waitFor(() => expect(calls.some(([c]) => c === 'restart_app')).toBe(true));
  });

  it('shows a refused update in plain words and installs nothing', async () => {
    await open({ refuse: true });
    await fireEvent.click(screen.getByTestId('check-app-update'));
    await fireEvent.click(await screen.findByTestId('install-app-update'));
    expect(await screen.findByTestId('app-update-error')).toHaveTextContent('not signed with ZedOps\'s update key');
    expect(screen.getByTestId('app-update-status').dataset.state).toBe('error');
    expect(screen.queryByTestId('restart-app')).toBeNull();
  });
});
