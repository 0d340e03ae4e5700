// The template editor's form: a template's JSON as fields (name, image, variables with
// description/default/required/secret, environment, ports, volumes, limits, restart) and back.
// Spec fields the form does not show (cmd, health check, labels, …) are kept as they are, so
// switching between the form and the JSON loses nothing. The relay checks the result again
// and names the field it refuses.

export interface VariableRow {
  name: string;
  description: string;
  default: string;
  required: boolean;
  secret: boolean;
}
export interface EnvRow {
  name: string;
  value: string;
}
export interface PortRow {
  container: string;
  /** Empty: any free port; a number, or `${VAR}`. */
  host: string;
  protocol: 'tcp' | 'udp';
}
export interface VolumeRow {
  source: string;
  target: string;
  readOnly: boolean;
}
export interface TemplateForm {
  name: string;
  description: string;
  image: string;
  variables: VariableRow[];
  env: EnvRow[];
  ports: PortRow[];
  volumes: VolumeRow[];
  /** Empty: unlimited. Numbers, or `${VAR}`. */
  cpus: string;
  memoryMiB: string;
  pids: string;
  restart: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  /** Spec fields the form does not show, kept as they were. */
  extra: Record<string, unknown>;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const VAR_REF = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;
const MIB = 1024 * 1024;
const SHOWN = ['image', 'env', 'ports', 'volumes', 'resources', 'restart'];

export function emptyForm(): TemplateForm {
  return {
    name: '',
    description: '',
    image: '',
    variables: [],
    env: [],
    ports: [],
    volumes: [],
    cpus: '',
    memoryMiB: '',
    pids: '',
    restart: 'unless-stopped',
    extra: {},
  };
}

const text = (v: unknown): string => (v === undefined || v === null ? '' : String(v));

/** The form for a template's JSON text, or why the text cannot be shown as one. */
export function formFromJson(json: string): TemplateForm | string {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (e) {
    return `Not valid JSON: ${(e as Error).message}.`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'The template must be a JSON object.';
  const t = value as Record<string, unknown>;
  const spec = (typeof t.spec === 'object' && t.spec !== null ? t.spec : {}) as Record<string, unknown>;
  const form = emptyForm();
  form.name = text(t.name);
  form.description = text(t.description);
  form.image = text(spec.image);
  const vars = (t.variables ?? {}) as Record<string, Record<string, unknown>>;
  form.variables = Object.entries(vars).map(([name, v]) => ({
    name,
    description: text(v.description),
    default: text(v.default),
    required: v.required === true,
    secret: v.secret === true,
  }));
  form.env = Object.entries((spec.env ?? {}) as Record<string, unknown>).map(([name, v]) => ({ name, value: text(v) }));
  form.ports = ((spec.ports ?? []) as Record<string, unknown>[]).map((p) => ({
    container: text(p.container),
    host: text(p.host),
    protocol: p.protocol === 'udp' ? 'udp' : 'tcp',
  }));
  // Ports with a host address, binds and the like are beyond the form: keep the JSON's.
  const portsFit = ((spec.ports ?? []) as Record<string, unknown>[]).every((p) => Object.keys(p).every((k) => ['container', 'host', 'protocol'].includes(k)));
  const volumesFit = ((spec.volumes ?? []) as Record<string, unknown>[]).every((v) => (v.type ?? 'volume') === 'volume');
  form.volumes = ((spec.volumes ?? []) as Record<string, unknown>[]).map((v) => ({
    source: text(v.source),
    target: text(v.target),
    readOnly: v.readOnly === true,
  }));
  const r = (spec.resources ?? {}) as Record<string, unknown>;
  form.cpus = text(r.cpus);
  form.memoryMiB = typeof r.memoryBytes === 'number' ? String(r.memoryBytes / MIB) : text(r.memoryBytes);
  form.pids = text(r.pids);
  const restart = text(spec.restart);
  form.restart = (['no', 'always', 'unless-stopped', 'on-failure'] as const).find((x) => x === restart) ?? (restart ? 'no' : 'unless-stopped');
  const resourcesFit = Object.keys(r).every((k) => ['cpus', 'memoryBytes', 'pids'].includes(k));
  if (!portsFit || !volumesFit || !resourcesFit || (restart && !['no', 'always', 'unless-stopped', 'on-failure'].includes(restart)))
    return 'This template uses settings the form does not show (host addresses, bind mounts, swap, …): edit it as JSON.';
  form.extra = Object.fromEntries(Object.entries(spec).filter(([k]) => !SHOWN.includes(k)));
  return form;
}

/** A number, or a `${VAR}` reference kept as text, or nothing for an empty field. */
function numberOrVar(value: string, scale = 1): number | string | undefined {
  const v = value.trim();
  if (!v) return undefined;
  if (VAR_REF.test(v)) return v;
  return Number(v) * scale;
}

/** The template's JSON text for a form. */
export function formToJson(form: TemplateForm): string {
  const variables: Record<string, Record<string, unknown>> = {};
  for (const v of form.variables) {
    const entry: Record<string, unknown> = { description: v.description };
    if (v.default !== '' && !v.secret) entry.default = v.default;
    if (v.required) entry.required = true;
    if (v.secret) entry.secret = true;
    variables[v.name.trim()] = entry;
  }
  const spec: Record<string, unknown> = { image: form.image.trim() };
  if (form.env.length) spec.env = Object.fromEntries(form.env.map((e) => [e.name.trim(), e.value]));
  if (form.ports.length)
    spec.ports = form.ports.map((p) => {
      const port: Record<string, unknown> = { container: numberOrVar(p.container) };
      const host = numberOrVar(p.host);
      if (host !== undefined) port.host = host;
      port.protocol = p.protocol;
      return port;
    });
  if (form.volumes.length)
    spec.volumes = form.volumes.map((v) => (v.readOnly ? { source: v.source.trim(), target: v.target.trim(), readOnly: true } : { source: v.source.trim(), target: v.target.trim() }));
  const resources: Record<string, unknown> = {};
  const cpus = numberOrVar(form.cpus);
  const memory = numberOrVar(form.memoryMiB, MIB);
  const pids = numberOrVar(form.pids);
  if (cpus !== undefined) resources.cpus = cpus;
  if (memory !== undefined) resources.memoryBytes = typeof memory === 'number' ? Math.round(memory) : memory;
  if (pids !== undefined) resources.pids = pids;
  if (Object.keys(resources).length) spec.resources = resources;
  spec.restart = form.restart;
  Object.assign(spec, form.extra);
  return JSON.stringify({ name: form.name.trim(), description: form.description, variables, spec }, null, 2);
}

/** What is wrong with the form, by field (`name`, `image`, `variables.0.name`, `ports.1.host`,
 * …), in plain words; empty when it can be sent. */
export function formErrors(form: TemplateForm): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!NAME.test(form.name.trim())) errors.name = 'A name is 1-64 of letters, digits, . _ and -.';
  if (!form.image.trim()) errors.image = 'Name the image, e.g. nginx:1.27.';
  else if (/\s/.test(form.image.trim())) errors.image = 'An image reference has no spaces.';
  const declared = new Set<string>();
  form.variables.forEach((v, i) => {
    const name = v.name.trim();
    if (!ENV_NAME.test(name)) errors[`variables.${i}.name`] = 'A variable name is letters, digits and _, not starting with a digit.';
    else if (declared.has(name)) errors[`variables.${i}.name`] = `${name} is declared twice.`;
    declared.add(name);
    if (v.secret && v.default !== '') errors[`variables.${i}.default`] = 'A secret variable has no default: the deployer types it.';
  });
  const numeric = (value: string, min: number, max: number) => {
    const v = value.trim();
    if (!v || VAR_REF.test(v)) return true;
    const n = Number(v);
    return Number.isFinite(n) && n >= min && n <= max;
  };
  form.env.forEach((e, i) => {
    if (!ENV_NAME.test(e.name.trim())) errors[`env.${i}.name`] = 'An environment name is letters, digits and _, not starting with a digit.';
  });
  form.ports.forEach((p, i) => {
    if (!p.container.trim() || !numeric(p.container, 1, 65535) || (!VAR_REF.test(p.container.trim()) && !Number.isInteger(Number(p.container))))
      errors[`ports.${i}.container`] = 'A port is 1-65535 (or ${VARIABLE}).';
    if (!numeric(p.host, 1, 65535) || (p.host.trim() && !VAR_REF.test(p.host.trim()) && !Number.isInteger(Number(p.host))))
      errors[`ports.${i}.host`] = 'Leave empty for any free port, or 1-65535 (or ${VARIABLE}).';
  });
  form.volumes.forEach((v, i) => {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(v.source.trim()) && !VAR_REF.test(v.source.trim()) && !v.source.includes('${'))
      errors[`volumes.${i}.source`] = 'A volume name is letters, digits, _ . and - (bind mounts: edit the JSON).';
    if (!v.target.trim().startsWith('/')) errors[`volumes.${i}.target`] = 'The path inside the container starts with /.';
  });
  if (!numeric(form.cpus, 0.01, 1024)) errors.cpus = 'CPUs is a number above 0, e.g. 1.5.';
  if (!numeric(form.memoryMiB, 6, 1024 * 1024 * 1024)) errors.memoryMiB = 'Memory is at least 6 MiB.';
  if (!numeric(form.pids, 1, 4194304)) errors.pids = 'Processes is a whole number above 0.';
  // Every ${NAME} used must be declared (the relay checks this too, naming the field).
  const used = formToJson(form).match(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g) ?? [];
  for (const ref of used) {
    const name = ref.slice(2, -1);
    if (!declared.has(name)) {
      errors.variables = `\${${name}} is used but not declared: add a variable named ${name}.`;
      break;
    }
  }
  return errors;
}
