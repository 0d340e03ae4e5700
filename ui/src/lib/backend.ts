// The one way into the Rust side. Components and the app model call these functions; nothing
// else imports the generated bindings or @tauri-apps/api. Every failure becomes a BackendError
// with the same {code, message} the Rust side sends (see src-tauri/src/error.rs).
import { commands, events } from './bindings';
import type {
  Action,
  ActionOutcome,
  AgentStatusChanged,
  AgentView,
  ConnectionChanged,
  ContainerView,
  ContainersUpdated,
  ErrorCode,
  LastLogin,
  SessionInfo,
} from './bindings';

export type {
  Action,
  ActionOutcome,
  AgentStatusChanged,
  AgentView,
  ConnectionChanged,
  ContainerView,
  ContainersUpdated,
  ErrorCode,
  LastLogin,
  SessionInfo,
};
export type { PortView } from './bindings';

/** A failed backend call: `code` to branch on, `message` to show to people. */
export class BackendError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'BackendError';
    this.code = code;
  }
}

/** Turns whatever a rejected call carries into a BackendError. Commands reject with the Rust
 * AppError object; Tauri itself rejects with a string (unknown command, bad argument). */
export function toBackendError(e: unknown): BackendError {
  if (e instanceof BackendError) return e;
  if (typeof e === 'object' && e !== null && 'code' in e && 'message' in e) {
    const { code, message } = e as { code: unknown; message: unknown };
    return new BackendError(String(code) as ErrorCode, String(message));
  }
  const text = e instanceof Error ? e.message : String(e);
  return new BackendError('INTERNAL', `The app's backend failed: ${text}. Restart ZedOps; if it persists, report it.`);
}

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw toBackendError(e);
  }
}

export const signIn = (relay: string, username: string, password: string): Promise<SessionInfo> =>
  call(() => commands.signIn(relay, username, password));
export const resumeSession = (): Promise<SessionInfo | null> => call(() => commands.resumeSession());
export const lastLogin = (): Promise<LastLogin> => call(() => commands.lastLogin());
export const signOut = (): Promise<void> => call(async () => { await commands.signOut(); });
export const listAgents = (): Promise<AgentView[]> => call(() => commands.listAgents());
export const listContainers = (agentId: string): Promise<ContainerView[]> =>
  call(() => commands.listContainers(agentId));
export const containerAction = (agentId: string, containerId: string, action: Action): Promise<ActionOutcome> =>
  call(() => commands.containerAction(agentId, containerId, action));

export type Unlisten = () => void;

/** Subscribes to the backend's pushes; resolves to one function that unsubscribes from all. */
export async function subscribe(handlers: {
  containersUpdated: (e: ContainersUpdated) => void;
  agentStatusChanged: (e: AgentStatusChanged) => void;
  connectionChanged: (e: ConnectionChanged) => void;
}): Promise<Unlisten> {
  const offs = await Promise.all([
    events.containersUpdated.listen((e) => handlers.containersUpdated(e.payload)),
    events.agentStatusChanged.listen((e) => handlers.agentStatusChanged(e.payload)),
    events.connectionChanged.listen((e) => handlers.connectionChanged(e.payload)),
  ]);
  return () => offs.forEach((off) => off());
}
