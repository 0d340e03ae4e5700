// The template form: JSON → form → JSON keeps what the form does not show; mistakes are named
// by field in plain words and shown beside their field.
import { fireEvent, render } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import TemplateFormEditor from './components/TemplateFormEditor.svelte';
import { emptyForm, formErrors, formFromJson, formToJson } from './templateForm';

const PZ = JSON.stringify({
  name: 'project-zomboid',
  description: 'PZ',
  variables: {
    ADMIN_PASSWORD: { description: 'admin password', required: true, secret: true },
    PORT: { description: 'game port', default: '16261' },
  },
  spec: {
    image: 'renegademaster/zomboid-dedicated-server:latest',
    cmd: ['start', '--no-ui'],
    env: { ADMIN_PASSWORD: '${ADMIN_PASSWORD}' },
    ports: [{ container: 16261, host: '${PORT}', protocol: 'udp' }],
    volumes: [{ source: 'pz-data', target: '/home/steam/Zomboid' }],
    resources: { cpus: 2, memoryBytes: 4294967296, pids: 500 },
    restart: 'unless-stopped',
    labels: { 'zedops.update': 'pinned' },
  },
});

describe('template form', () => {
  it('shows a template as fields and writes it back without losing the rest', () => {
    const form = formFromJson(PZ);
    if (typeof form === 'string') throw new Error(form);
    expect(form.name).toBe('project-zomboid');
    expect(form.variables).toEqual([
      { name: 'ADMIN_PASSWORD', description: 'admin password', default: '', required: true, secret: true },
      { name: 'PORT', description: 'game port', default: '16261', required: false, secret: false },
    ]);
    expect(form.ports).toEqual([{ container: '16261', host: '${PORT}', protocol: 'udp' }]);
    expect(form.memoryMiB).toBe('4096');
    expect(formErrors(form)).toEqual({});
    const back = JSON.parse(formToJson(form));
    expect(back).toEqual(JSON.parse(PZ));
  });

  it('names each mistake by field', () => {
    const form = emptyForm();
    form.name = 'bad name';
    form.variables = [{ name: '1X', description: '', default: 'x', required: false, secret: true }];
    form.ports = [{ container: '70000', host: 'abc', protocol: 'tcp' }];
    form.volumes = [{ source: '/etc', target: 'data', readOnly: false }];
    form.memoryMiB = '1';
    const errors = formErrors(form);
    expect(Object.keys(errors).sort()).toEqual([
      'image', 'memoryMiB', 'name', 'ports.0.container', 'ports.0.host',
      'variables.0.default', 'variables.0.name', 'volumes.0.source', 'volumes.0.target',
    ]);
    expect(errors['variables.0.default']).toMatch(/secret variable has no default/);
  });

  it('shows each mistake beside its field, named by the field', async () => {
    // Reactive, as the templates view holds it: the fields are bound to it.
    const form = $state(emptyForm());
    form.name = 'bad name';
    form.image = 'a b';
    form.variables = [{ name: '1X', description: '', default: 'x', required: false, secret: true }];
    form.env = [{ name: '1E', value: '${UNDECLARED}' }];
    form.ports = [{ container: '70000', host: 'abc', protocol: 'tcp' }];
    form.volumes = [{ source: '/etc', target: 'data', readOnly: false }];
    form.cpus = '0';
    form.memoryMiB = '1';
    form.pids = '0';
    const errors = formErrors(form);
    expect(Object.keys(errors).sort()).toEqual([
      'cpus', 'env.0.name', 'image', 'memoryMiB', 'name', 'pids', 'ports.0.container', 'ports.0.host',
      'variables', 'variables.0.default', 'variables.0.name', 'volumes.0.source', 'volumes.0.target',
    ]);
    const { container, getByTestId } = render(TemplateFormEditor, { form, errors, nameLocked: false });
    const shown = [...container.querySelectorAll<HTMLElement>('.field-error')].map((e) => [e.dataset.field, e.textContent]);
    expect(Object.fromEntries(shown)).toEqual(errors);
    expect(shown).toHaveLength(Object.keys(errors).length);
    expect(getByTestId('tf-variables-error')).toHaveTextContent(errors.variables);
    // What is typed lands in the form the view saves.
    await fireEvent.input(getByTestId('tf-image'), { target: { value: 'nginx:1.27' } });
    expect(form.image).toBe('nginx:1.27');
  });

  it('says when a ${VARIABLE} is used but not declared', () => {
    const form = emptyForm();
    form.name = 'web';
    form.image = 'nginx:1.27';
    form.ports = [{ container: '80', host: '${PORT}', protocol: 'tcp' }];
    expect(formErrors(form).variables).toMatch(/\$\{PORT\} is used but not declared/);
  });

  it('sends templates the form cannot show to the JSON editor', () => {
    const bind = JSON.stringify({ name: 'x', spec: { image: 'a', volumes: [{ type: 'bind', source: '/srv', target: '/srv' }] } });
    expect(formFromJson(bind)).toMatch(/edit it as JSON/);
    expect(formFromJson('{')).toMatch(/Not valid JSON/);
  });
});
