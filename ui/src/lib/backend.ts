// The one way into the Rust side. Components and the app model call these functions; nothing
// else imports the generated bindings or @tauri-apps/api. Every failure becomes a BackendError
// with the same {code, message} the Rust side sends (see src-tauri/src/error.rs).
import { Channel } from '@tauri-apps/api/core';
import { commands, events } from './bindings';
import type {
  Action,
  ActionOutcome,
  AgentStatusChanged,
  AgentView,
  AuditEntry,
  ConnectionChanged,
  ContainerDetailView,
  ContainerView,
  ContainersUpdated,
  ErrorCode,
  LastLogin,
  LogBatch,
  LogLineView,
  RegistrationToken,
  SessionInfo,
  StatsSample,
  StatsUpdate,
  WatchEnd,
} from './bindings';

export type {
  Action,
  ActionOutcome,
  AgentStatusChanged,
  AgentView,
  AuditEntry,
  ConnectionChanged,
  ContainerDetailView,
  ContainerView,
  ContainersUpdated,
  ErrorCode,
  LastLogin,
  LogBatch,
  LogLineView,
  RegistrationToken,
  SessionInfo,
  StatsSample,
  StatsUpdate,
  WatchEnd,
};
export type { EnvVarView, HealthView, MountView, PortView } from './bindings';

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

/** One container in detail (`docker inspect`, secrets masked by the agent). */
export const inspectContainer = (agentId: string, containerId: string): Promise<ContainerDetailView> =>
  call(() => commands.inspectContainer(agentId, containerId));

/** A live watch (logs or stats); `close` stops it and the agent's stream with it. */
export interface Watch {
  close: () => void;
}

async function watch<T>(
  open: (channel: Channel<T>) => Promise<number>,
  onItem: (item: T) => void,
): Promise<Watch> {
  const channel = new Channel<T>();
  let closed = false;
  channel.onmessage = (item) => {
    if (!closed) onItem(item);
  };
  const id = await call(() => open(channel));
  return {
    close: () => {
      if (closed) return;
      closed = true;
      void commands.closeWatch(id).catch(() => {});
    },
  };
}

/** Follows a container's output: the last `tail` lines (the backend's default when null), then
 * new ones; the last batch has `end` set. */
export const watchLogs = (
  agentId: string,
  containerId: string,
  tail: number | null,
  onBatch: (batch: LogBatch) => void,
): Promise<Watch> => watch<LogBatch>((ch) => commands.watchLogs(agentId, containerId, tail, ch), onBatch);

/** Follows a running container's resource usage, a sample about every second. */
export const watchStats = (
  agentId: string,
  containerId: string,
  onUpdate: (update: StatsUpdate) => void,
): Promise<Watch> => watch<StatsUpdate>((ch) => commands.watchStats(agentId, containerId, ch), onUpdate);

/** (Admin) A registration token and its install command; `publicUrl` null = the signed-in relay. */
export const createRegistrationToken = (ttlSecs: number, publicUrl: string | null): Promise<RegistrationToken> =>
  call(() => commands.createRegistrationToken(ttlSecs, publicUrl));
/** (Admin) The newest audit entries, of one agent or (null) of all. */
export const listAudit = (agentId: string | null): Promise<AuditEntry[]> => call(() => commands.listAudit(agentId));

/** Puts text on the clipboard: the async Clipboard API where the web view allows it, else the
 * older copy command on a selected, off-screen text area (both need the click that asks). */
export async function copyText(text: string): Promise<void> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return;
    }
  } catch {
    // Refused (no permission, not a secure context): try the older way.
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.left = '-9999px';
  document.body.appendChild(area);
  area.select();
  const done = document.execCommand('copy');
  area.remove();
  if (!done) {
    throw new BackendError('INTERNAL', 'The clipboard refused the text: select the command and copy it with Ctrl+C.');
  }
}

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

// Alerts: the recent list, the unseen count and the per-agent mutes (src-tauri/src/alerting.rs).
import type { AlertKind, AlertView, AlertsChanged, AlertsState } from './bindings';
export type { AlertKind, AlertView, AlertsChanged, AlertsState };

export const alertState = (): Promise<AlertsState> => call(() => commands.alertState());
/** Marks every alert seen: the tray icon and the badges go back to normal. */
export const markAlertsSeen = (): Promise<AlertsState> => call(() => commands.markAlertsSeen());
/** Mutes (or unmutes) an agent's native notifications; its alerts are still listed. */
export const setAgentMuted = (agentId: string, muted: boolean): Promise<AlertsState> =>
  call(() => commands.setAgentMuted(agentId, muted));

/** Subscribes to alert changes; resolves to the function that unsubscribes. */
export async function subscribeAlerts(handler: (e: AlertsChanged) => void): Promise<Unlisten> {
  return events.alertsChanged.listen((e) => handler(e.payload));
}
