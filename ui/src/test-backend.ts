// Shared by the tests that run the whole app against a mocked Tauri IPC (the only thing mocked):
// the mock that records every call, the session answers every start asks for, agents, the app's
// fresh start in each test, and the container rows the tests look into.
import { mockIPC } from '@tauri-apps/api/mocks';
import { render, screen } from '@testing-library/svelte';
import { afterEach, beforeEach } from 'vitest';
import App from './App.svelte';
import { app } from './lib/app.svelte';
import type { AgentView } from './lib/backend';

export const RELAY = 'http://127.0.0.1:7878';

/** A backend call as the mock got it: the command and its arguments. */
export type Call = [string, Record<string, unknown>];

/** An online Linux agent; `changes` sets any other field. */
export const agent = (id: string, name: string, changes: Partial<AgentView> = {}): AgentView => ({
  id, name, online: true, lastSeen: null, dockerVersion: '28', version: '0.1.0', os: 'linux', arch: 'x86_64', hostname: name, ...changes,
});

/** Mocks the backend and returns the calls it gets, in order. The last login was `user`'s at
 * RELAY; the session resumes with `role` (null: none to resume, the sign-in form shows).
 * `answer` answers every other command (throwing rejects the call); a command it answers with
 * `undefined` fails as unexpected. */
export function mockBackend(
  user: string,
  role: string | null,
  answer: (cmd: string, args: Record<string, unknown>) => unknown,
): Call[] {
  const calls: Call[] = [];
  mockIPC(
    async (cmd, args) => {
      const a = (args ?? {}) as Record<string, unknown>;
      calls.push([cmd, a]);
      if (cmd === 'last_login') return { relay: RELAY, user };
      if (cmd === 'resume_session') return role === null ? null : { relay: RELAY, user, role, keyringWarning: null };
      const reply = await answer(cmd, a);
      if (reply === undefined) throw `unexpected command ${cmd}`;
      return reply;
    },
    { shouldMockEvents: true },
  );
  return calls;
}

/** Each test starts a fresh app model, as at launch, and stops it after the test (before the
 * setup file's clearMocks, which takes the mocked event plugin away). */
export function freshAppEachTest(): void {
  beforeEach(() => {
    app.reset();
    app.phase = 'starting';
  });
  afterEach(() => app.stop());
}

/** Shows the app and starts it, as at launch. */
export async function launch(): Promise<void> {
  render(App);
  await app.start();
}

/** Launches the app (as `launch`) and waits for the agents' list it opens on. */
export async function launchToAgents(): Promise<void> {
  await launch();
  await screen.findAllByTestId('agent-row');
}

/** The fleet table's row of the container named `name`. */
export const containerRow = (name: string): HTMLElement =>
  screen.getAllByTestId('container-row').find((r) => r.dataset.containerName === name)!;

/** jsdom has no ResizeObserver; the terminal and the editor only need it to exist. */
export function stubResizeObserver(): void {
  globalThis.ResizeObserver ??= class {
    observe() {}
    disconnect() {}
    unobserve() {}
  } as unknown as typeof ResizeObserver;
}
