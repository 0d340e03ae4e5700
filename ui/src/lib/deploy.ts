// The deploy screens' logic, apart from the components so it is tested on its own: who may do
// what, checking the "New container" form before it is sent, the pull's progress as a
// percentage, the typed confirmation of a removal, and the template editor's syntax check.
import type { PullProgressView, VariableView } from './backend';
import { formatBytes } from './detail';

/** Docker's rule for container names (the relay and agent check it again). */
export const CONTAINER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Deploying, pulling and removing are for operators and admins; the relay enforces it too. */
export function canOperate(role: string | undefined | null): boolean {
  return role === 'admin' || role === 'operator';
}

/** Templates are written by admins; everyone reads them. */
export function canEditTemplates(role: string | undefined | null): boolean {
  return role === 'admin';
}

export interface DeployForm {
  agentId: string;
  template: string;
  name: string;
  /** Values typed in, by variable name; blank means "the default". */
  values: Record<string, string>;
}

/** What is wrong with the form, by field (`agent`, `template`, `name`, or a variable's name),
 * in words that say what to do; empty when it may be sent. */
export function validateDeploy(form: DeployForm, variables: VariableView[]): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!form.agentId) errors.agent = 'Choose the server to deploy on.';
  if (!form.template) errors.template = 'Choose a template.';
  const name = form.name.trim();
  if (!name) errors.name = 'Enter a name for the new container.';
  else if (!CONTAINER_NAME.test(name))
    errors.name = 'Use letters, digits, "_", "." and "-" only, starting with a letter or digit (at most 128).';
  for (const v of variables) {
    const value = form.values[v.name] ?? '';
    if (v.required && value === '' && v.default == null) errors[v.name] = `${v.name} is required: enter a value.`;
    else if (value.length > 4096) errors[v.name] = `${v.name} is too long: at most 4096 characters.`;
    else if (/[\u0000-\u001f\u007f]/.test(value)) errors[v.name] = `${v.name} may not contain control characters or line breaks.`;
  }
  return errors;
}

/** The values to send: only those typed in (the relay applies the defaults to the rest). */
export function filledValues(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== ''));
}

/** How far a pull is, 0–100, or null while Docker does not yet know the sizes. */
export function progressPercent(p: PullProgressView | null): number | null {
  // Byte counts arrive as `number | null` (a Rust f64); null never comes from a real pull.
  const total = p?.total ?? 0;
  if (!p || total <= 0) return null;
  return Math.max(0, Math.min(100, Math.floor(((p.current ?? 0) / total) * 100)));
}

/** One line under the progress bar, e.g. "Pulling nginx:1: 3.0 MiB of 12.0 MiB, 1 of 3 layers". */
export function progressText(p: PullProgressView): string {
  const total = p.total ?? 0;
  if (p.layersTotal === 0) return `Pulling ${p.image}: starting`;
  const bytes = total > 0 ? `${formatBytes(p.current ?? 0)} of ${formatBytes(total)}` : 'starting';
  const layers = p.layersTotal === 1 ? 'layer' : 'layers';
  return `Pulling ${p.image}: ${bytes}, ${p.layersDone} of ${p.layersTotal} ${layers}`;
}

/** What is wrong with an image reference typed to pull, in plain words, or null when it looks
 * like one (the agent checks it fully and says what it refuses). */
export function imageRefError(text: string): string | null {
  const ref = text.trim();
  if (!ref) return 'Enter the image to pull, e.g. nginx:1.27 or registry.example.com/team/app:2.';
  if (/\s/.test(ref)) return 'An image reference has no spaces.';
  if (ref.length > 255) return 'That reference is longer than 255 characters.';
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(ref))
    return 'An image reference is made of letters, digits and . _ - / : @ (e.g. nginx:1.27).';
  return null;
}

/** A removal goes ahead only once the container's exact name is typed. */
export function confirmMatches(typed: string, name: string): boolean {
  return name !== '' && typed.trim() === name;
}

/** The editor's text checked as JSON before it is sent: null when it parses, else where it
 * does not (the relay then checks the fields and names the one it refuses). */
export function jsonError(text: string): string | null {
  if (!text.trim()) return 'The template is empty: paste or write its JSON.';
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return 'The template must be a JSON object with "name" and "spec".';
    const obj = value as Record<string, unknown>;
    if (typeof obj.name !== 'string' || !obj.name) return 'The template needs a "name".';
    if (typeof obj.spec !== 'object' || obj.spec === null) return 'The template needs a "spec" object with at least an "image".';
    return null;
  } catch (e) {
    return `Not valid JSON: ${(e as Error).message}.`;
  }
}

/** A starting point for a new template. */
export const NEW_TEMPLATE = JSON.stringify(
  {
    name: 'my-template',
    description: 'What this server is',
    variables: { PORT: { description: 'Host port', default: '8080', required: false, secret: false } },
    spec: { image: 'nginx:1.27', ports: [{ container: 80, host: '${PORT}', protocol: 'tcp' }], restart: 'unless-stopped' },
  },
  null,
  2,
);
