// The one way into the Rust side. Components and the app model call these functions; nothing
// else imports the generated bindings or @tauri-apps/api. Every failure becomes a BackendError
// with the same {code, message} the Rust side sends (see src-tauri/src/error.rs).
import { Channel } from '@tauri-apps/api/core';
import { commands, events } from './bindings';
import type {
  Action,
  ActionOutcome,
  AgentImageUpdates,
  AgentStatusChanged,
  AgentUpdateEvent,
  AgentView,
  AlertsChanged,
  AlertsState,
  AppUpdateCheck,
  AppUpdateInstalled,
  AuditEntry,
  ConnectionChanged,
  ConsoleEvent,
  ConsoleKind,
  ContainerDetailView,
  ContainerUpdateEvent,
  ContainerUpdateOutcome,
  ContainerView,
  ContainersUpdated,
  DeployedView,
  ErrorCode,
  FileListView,
  FleetUpdateEvent,
  FleetUpdateSummary,
  ImageRemovedView,
  ImageUpdateCheck,
  ImageUpdatesChanged,
  ImageView,
  LastLogin,
  LogBatch,
  OpenedFile,
  PullProgressView,
  RegistrationToken,
  SavedFile,
  SessionInfo,
  StatsUpdate,
  TemplateSaved,
  TemplateSummary,
  TemplateView,
  WrittenFile,
} from './bindings';
// Components take the generated types from here too (type-only: they never call the bindings).
export type * from './bindings';

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

/** A call that reports progress over a channel until it answers: each item goes to `onItem`. */
function callWithProgress<T, R>(onItem: (item: T) => void, run: (channel: Channel<T>) => Promise<R>): Promise<R> {
  const channel = new Channel<T>();
  channel.onmessage = onItem;
  return call(() => run(channel));
}

/** A live watch (logs or stats); `close` stops it and the agent's stream with it. */
export interface Watch {
  close: () => void;
}

/** Opens something the backend keeps under an id (a watch, a console); nothing reaches
 * `onItem` once `close` has run, and `close` tells the backend (`shut`) once. */
async function watch<T>(
  open: (channel: Channel<T>) => Promise<number>,
  onItem: (item: T) => void,
  shut: (id: number) => Promise<void> = commands.closeWatch,
): Promise<Watch & { id: number }> {
  const channel = new Channel<T>();
  let closed = false;
  channel.onmessage = (item) => {
    if (!closed) onItem(item);
  };
  const id = await call(() => open(channel));
  return {
    id,
    close: () => {
      if (closed) return;
      closed = true;
      void shut(id).catch(() => {});
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

// Deploy: templates, "New container" with pull progress, removal, images (src-tauri/src/deploy.rs).

export const listTemplates = (): Promise<TemplateSummary[]> => call(() => commands.listTemplates());
export const showTemplate = (name: string): Promise<TemplateView> => call(() => commands.showTemplate(name));
/** (Admin) Stores the JSON text as a new template, or (`update`) as its next version. */
export const saveTemplate = (json: string, update: boolean): Promise<TemplateSaved> =>
  call(() => commands.saveTemplate(json, update));
/** (Admin) Removes a template; containers made from it stay. */
export const removeTemplate = (name: string): Promise<TemplateSaved> => call(() => commands.removeTemplate(name));

/** Deploys a template onto an agent; `onProgress` sees the pull. Resolves once the container exists. */
export function deployContainer(
  agentId: string,
  template: string,
  name: string,
  variables: Record<string, string>,
  start: boolean,
  onProgress: (p: PullProgressView) => void,
): Promise<DeployedView> {
  return callWithProgress(onProgress, (channel) => commands.deployContainer(agentId, template, name, variables, start, channel));
}

/** Removes a container (a running one only with `force`). */
export const removeContainer = (agentId: string, containerId: string, force: boolean, volumes: boolean): Promise<void> =>
  call(async () => { await commands.removeContainer(agentId, containerId, force, volumes); });
export const listImages = (agentId: string): Promise<ImageView[]> => call(() => commands.listImages(agentId));
export const removeImage = (agentId: string, image: string, force: boolean): Promise<ImageRemovedView> =>
  call(() => commands.removeImage(agentId, image, force));
/** Pulls an image onto an agent; `onProgress` sees the pull. Resolves with the image's id. */
export function pullImage(agentId: string, image: string, onProgress: (p: PullProgressView) => void): Promise<string> {
  return callWithProgress(onProgress, (channel) => commands.pullImage(agentId, image, channel));
}

// Console and Files (src-tauri/src/console.rs, files.rs).

/** An open console session. */
export interface ConsoleHandle {
  input: (text: string) => Promise<void>;
  resize: (cols: number, rows: number) => void;
  /** The terminal wrote `bytes` of output: the agent may send that much more. */
  ack: (bytes: number) => void;
  close: () => void;
}

/** Opens the container's console (`attach`) or a `shell`; events go to `onEvent`. */
export async function openConsole(
  agentId: string,
  containerId: string,
  kind: ConsoleKind,
  shell: string | null,
  cols: number,
  rows: number,
  onEvent: (e: ConsoleEvent) => void,
): Promise<ConsoleHandle> {
  const { id, close } = await watch<ConsoleEvent>(
    (channel) => commands.openConsole(agentId, containerId, kind, shell, cols, rows, channel),
    onEvent,
    commands.closeConsole,
  );
  return {
    input: (text) => call(async () => { await commands.consoleInput(id, text); }),
    resize: (c, r) => void commands.consoleResize(id, c, r).catch(() => {}),
    ack: (bytes) => void commands.consoleAck(id, bytes).catch(() => {}),
    close,
  };
}

export const listFiles = (agentId: string, containerId: string, path: string): Promise<FileListView> =>
  call(() => commands.listFiles(agentId, containerId, path));
/** Saves the file into the Downloads folder; resolves to where. */
export const downloadFile = (agentId: string, containerId: string, path: string): Promise<SavedFile> =>
  call(() => commands.downloadFile(agentId, containerId, path));
/** (Admin) Uploads base64 `data` as the file `path`. */
export const uploadFile = (agentId: string, containerId: string, path: string, data: string): Promise<string> =>
  call(() => commands.uploadFile(agentId, containerId, path, data));
export const removeFile = (agentId: string, containerId: string, path: string): Promise<string> =>
  call(() => commands.removeFile(agentId, containerId, path));
export const makeDir = (agentId: string, containerId: string, path: string): Promise<string> =>
  call(() => commands.makeDir(agentId, containerId, path));
// The Files tab's editor: a text file read whole (at most 1 MiB) and saved back (admins).
export const openFileForEdit = (agentId: string, containerId: string, path: string): Promise<OpenedFile> =>
  call(() => commands.openFileForEdit(agentId, containerId, path));
/** (Admin) Saves base64 `data` as the file `path` with permission bits `mode`. */
export const saveEditedFile = (agentId: string, containerId: string, path: string, data: string, mode: number): Promise<WrittenFile> =>
  call(() => commands.saveEditedFile(agentId, containerId, path, data, mode));

// Agent self-update (src-tauri/src/update.rs).

/** The agent version the relay serves, or null when it serves none. */
export const offeredAgentVersion = (): Promise<string | null> => call(() => commands.offeredAgentVersion());

/** (Admin) Updates the agents in order: `canary` first one at a time, then `parallel` at a
 * time, stopping at the first failure; each agent's state goes to `onEvent`. */
export function updateAgents(
  agentIds: string[],
  canary: number,
  parallel: number,
  onEvent: (e: AgentUpdateEvent) => void,
): Promise<number> {
  return callWithProgress(onEvent, (channel) => commands.updateAgents(agentIds, canary, parallel, channel));
}

// This desk's settings (src-tauri/src/autostart.rs) and updates of the app itself
// (src-tauri/src/app_update.rs).
/** Whether ZedOps starts when you log in (read from the system's own list each time). */
export const openAtLogin = (): Promise<boolean> => call(() => commands.openAtLogin());
/** Turns "Open at login" on or off; answers the state read back from the system. */
export const setOpenAtLogin = (enabled: boolean): Promise<boolean> => call(() => commands.setOpenAtLogin(enabled));
/** Asks the update server whether a newer ZedOps exists. */
export const checkAppUpdate = (): Promise<AppUpdateCheck> => call(() => commands.checkAppUpdate());
/** Downloads, verifies (signature) and installs the update the last check found. */
export const installAppUpdate = (): Promise<AppUpdateInstalled> => call(() => commands.installAppUpdate());
/** Restarts ZedOps (after an update). */
export const restartApp = (): Promise<void> => call(() => commands.restartApp());

// Image updates (src-tauri/src/image_updates.rs): badges, Update, Update all.

/** Every agent's containers with a newer image, as the relay keeps them. */
export const listImageUpdates = (): Promise<AgentImageUpdates[]> => call(() => commands.listImageUpdates());
/** (Operator) One agent (null: every connected agent) checks its images now. */
export const checkImageUpdates = (agentId: string | null): Promise<ImageUpdateCheck> =>
  call(() => commands.checkImageUpdates(agentId));

/** (Operator) Updates one container; each step goes to `onEvent`. A rollback resolves too. */
export function updateContainer(
  agentId: string,
  container: string,
  onEvent: (e: ContainerUpdateEvent) => void,
): Promise<ContainerUpdateOutcome> {
  return callWithProgress(onEvent, (channel) => commands.updateContainer(agentId, container, channel));
}

/** (Operator) "Update all": canaries first, then `parallel` at a time, stopping at the first rollback. */
export function updateAllContainers(
  agentId: string | null,
  canary: number,
  parallel: number,
  onEvent: (e: FleetUpdateEvent) => void,
): Promise<FleetUpdateSummary> {
  return callWithProgress(onEvent, (channel) => commands.updateAllContainers(agentId, canary, parallel, channel));
}

/** Subscribes to the agents' pushed update lists; resolves to the function that unsubscribes. */
export async function subscribeImageUpdates(handler: (e: ImageUpdatesChanged) => void): Promise<Unlisten> {
  return events.imageUpdatesChanged.listen((e) => handler(e.payload));
}
