// The deploy screens against a mocked Tauri IPC (the only thing mocked): "New container" builds
// its form from the template (required and secret marked, checked before sending), shows the
// pull's progress and lands on the new container; a refusal is shown in words; removal needs
// the typed name (and force for a running one); images and templates by role.
import type { Channel } from '@tauri-apps/api/core';
import { fireEvent, screen, waitFor, within } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from './lib/app.svelte';
import type { ContainerView, DeployedView, PullProgressView, TemplateView } from './lib/backend';
import { agent, freshAppEachTest, launch, mockBackend } from './test-backend';

const web: ContainerView = { id: 'w'.repeat(64), name: 'web', image: 'busybox', state: 'running', status: 'Up', created: 1, ports: [], health: null };
const newId = 'n'.repeat(64);
const zomboid: TemplateView = {
  name: 'zomboid', version: 2, description: 'Project Zomboid', image: 'pz:${TAG}',
  variables: [
    { name: 'ADMIN_PASSWORD', description: 'The admin password', default: null, required: true, secret: true },
    { name: 'SERVER_NAME', description: 'Shown in the browser', default: 'servertest', required: false, secret: false },
  ],
  json: '{"name": "zomboid", "spec": {"image": "pz"}}', updatedBy: 'ann', updatedAt: '2026-01-01T00:00:00Z',
};

function fakeBackend(role: string) {
  let containers = [web];
  const deploy: { progress?: Channel<PullProgressView>; finish?: (v: DeployedView) => void; fail?: (e: unknown) => void } = {};
  const calls = mockBackend('otto', role, async (cmd, a) => {
    switch (cmd) {
      case 'list_agents': return [agent('a1', 'eu-1')];
      case 'list_containers': return containers;
      case 'list_templates': return [{ name: 'zomboid', version: 2, description: 'Project Zomboid', image: 'pz:${TAG}', updatedBy: 'ann', updatedAt: '2026-01-01T00:00:00Z' }];
      case 'show_template': return zomboid;
      case 'deploy_container':
        deploy.progress = a.onProgress as Channel<PullProgressView>;
        return new Promise((resolve, reject) => { deploy.finish = resolve; deploy.fail = reject; });
      case 'remove_container': containers = containers.filter((c) => c.id !== a.containerId); return null;
      case 'list_images':
        return [{ id: 'sha256:' + 'a'.repeat(64), tags: ['busybox:latest'], size: 4_400_000, created: 1_700_000_000, usedBy: ['web'] }];
      case 'remove_image': return { untagged: ['busybox:latest'], deleted: ['sha256:aa'] };
      case 'save_template':
        if (String(a.json).includes('privileged')) throw { code: 'TEMPLATE_INVALID', message: 'The template is not valid: spec.privileged is not allowed.' };
        return { name: 'web', version: 1 };
      case 'inspect_container': throw { code: 'CONTAINER_NOT_FOUND', message: 'gone' };
      case 'watch_stats': case 'watch_logs': return 1;
      case 'close_watch': return null;
    }
  });
  return { calls, deploy };
}

async function start(role: string) {
  const backend = fakeBackend(role);
  await launch();
  await fireEvent.click(within(await screen.findByTestId('agent-row')).getByText('eu-1'));
  await screen.findByTestId('container-row');
  return backend;
}

describe('deploy', () => {
  freshAppEachTest();

  it('New container: a form from the template, checked, with pull progress, then the new container', async () => {
    const backend = await start('operator');
    await fireEvent.click(screen.getByTestId('new-container'));
    expect((screen.getByTestId('deploy-agent') as HTMLSelectElement).value).toBe('a1');
    await waitFor(() => expect(screen.getByTestId('deploy-template').querySelectorAll('option')).toHaveLength(2));
    await fireEvent.change(screen.getByTestId('deploy-template'), { target: { value: 'zomboid' } });
    const password = (await screen.findByTestId('deploy-var-ADMIN_PASSWORD')) as HTMLInputElement;
    expect(password.type).toBe('password');
    const serverName = screen.getByTestId('deploy-var-SERVER_NAME') as HTMLInputElement;
    expect(serverName.type).toBe('text');
    expect(serverName.placeholder).toBe('servertest');
    const required = screen.getAllByTestId('deploy-variable')[0];
    expect(within(required).getByTitle('Required')).toBeInTheDocument();
    expect(required).toHaveTextContent('The admin password');

    // Nothing is sent while a required field is blank or the name is not a container name.
    await fireEvent.input(screen.getByTestId('deploy-name'), { target: { value: 'pz 1' } });
    await fireEvent.click(screen.getByTestId('deploy-submit'));
    expect(await screen.findByText('ADMIN_PASSWORD is required: enter a value.')).toBeInTheDocument();
    expect(screen.getByText(/Use letters, digits/)).toBeInTheDocument();
    expect(backend.calls.some(([c]) => c === 'deploy_container')).toBe(false);

    await fireEvent.input(screen.getByTestId('deploy-name'), { target: { value: 'pz-1' } });
    await fireEvent.input(password, { target: { value: 's3cret' } });
    await fireEvent.click(screen.getByTestId('deploy-submit'));
    await waitFor(() => expect(backend.deploy.progress).toBeDefined());
    const sent = backend.calls.find(([c]) => c === 'deploy_container')![1];
    // Blank fields are left to the template's defaults.
    expect(sent).toMatchObject({ agentId: 'a1', template: 'zomboid', name: 'pz-1', variables: { ADMIN_PASSWORD: 's3cret' }, start: true });
    backend.deploy.progress!.onmessage({ image: 'pz:1', current: 25, total: 100, layersDone: 1, layersTotal: 4 });
    await waitFor(() => expect(screen.getByTestId('deploy-progress').dataset.percent).toBe('25'));
    expect(screen.getByTestId('deploy-progress-text')).toHaveTextContent('Pulling pz:1: 25 B of 100 B, 1 of 4 layers');
    expect(screen.getByTestId('deploy-submit')).toBeDisabled();

    backend.deploy.finish!({ containerId: newId, name: 'pz-1', started: true, image: 'pz:1', pulled: true, warnings: [] });
    await waitFor(() => expect(app.view).toEqual({ kind: 'container', agentId: 'a1', containerId: newId, from: 'agent' }));
    expect(await screen.findByText('Created pz-1 on eu-1 and started it (pulled pz:1)')).toBeInTheDocument();
  });

  it('shows a refusal in the words the relay chose, and the form stays', async () => {
    const backend = await start('admin');
    await fireEvent.click(screen.getByTestId('new-container'));
    await waitFor(() => expect(screen.getByTestId('deploy-template').querySelectorAll('option')).toHaveLength(2));
    await fireEvent.change(screen.getByTestId('deploy-template'), { target: { value: 'zomboid' } });
    await fireEvent.input(await screen.findByTestId('deploy-var-ADMIN_PASSWORD'), { target: { value: 'x' } });
    await fireEvent.input(screen.getByTestId('deploy-name'), { target: { value: 'web' } });
    await fireEvent.click(screen.getByTestId('deploy-submit'));
    await waitFor(() => expect(backend.deploy.fail).toBeDefined());
    backend.deploy.fail!({ code: 'CONTAINER_NAME_IN_USE', message: 'A container named web already exists on eu-1: choose another name.' });
    expect(await screen.findByTestId('deploy-error')).toHaveTextContent('choose another name');
    expect(app.view.kind).toBe('deploy');
    expect(screen.getByTestId('deploy-submit')).toBeEnabled();
  });

  it('Remove needs the typed name, and force for a running container', async () => {
    const backend = await start('operator');
    await fireEvent.click(within(screen.getByTestId('container-row')).getByTestId('action-remove'));
    const dialog = await screen.findByTestId('remove-dialog');
    expect(dialog).toHaveTextContent('Remove web from eu-1?');
    const confirm = screen.getByTestId('remove-confirm');
    expect(confirm).toBeDisabled();
    await fireEvent.input(screen.getByTestId('remove-confirm-name'), { target: { value: 'we' } });
    expect(confirm).toBeDisabled();
    await fireEvent.input(screen.getByTestId('remove-confirm-name'), { target: { value: 'web' } });
    // Running: not without force.
    expect(confirm).toBeDisabled();
    await fireEvent.click(screen.getByTestId('remove-force'));
    expect(confirm).toBeEnabled();
    await fireEvent.click(confirm);
    await waitFor(() => expect(screen.queryByTestId('remove-dialog')).toBeNull());
    expect(backend.calls.find(([c]) => c === 'remove_container')![1]).toEqual({ agentId: 'a1', containerId: web.id, force: true, volumes: false });
    expect(screen.queryByTestId('container-row')).toBeNull();
    expect(await screen.findByText('Removed web from eu-1')).toBeInTheDocument();
  });

  it('viewers see images and templates but no deploy, remove or edit controls', async () => {
    const backend = await start('viewer');
    expect(screen.queryByTestId('new-container')).toBeNull();
    expect(screen.queryByTestId('action-remove')).toBeNull();
    await fireEvent.click(screen.getByTestId('open-images'));
    const row = await screen.findByTestId('image-row');
    expect(row).toHaveTextContent('busybox:latest');
    expect(row).toHaveTextContent('4.20 MiB');
    expect(row).toHaveTextContent('web');
    expect(within(row).queryByTestId('image-remove')).toBeNull();
    await fireEvent.click(screen.getByTestId('nav-templates'));
    await screen.findByTestId('template-row');
    expect(screen.queryByTestId('template-new')).toBeNull();
    expect(screen.queryByTestId('template-edit')).toBeNull();
    expect(backend.calls.some(([c]) => c === 'save_template')).toBe(false);
  });

  it('operators remove an image after confirming, with force when it is in use', async () => {
    const backend = await start('operator');
    await fireEvent.click(screen.getByTestId('open-images'));
    await fireEvent.click(await screen.findByTestId('image-remove'));
    expect(await screen.findByTestId('image-remove-dialog')).toHaveTextContent('Used by web');
    await fireEvent.click(screen.getByTestId('image-remove-force'));
    await fireEvent.click(screen.getByTestId('image-remove-confirm'));
    await waitFor(() => expect(screen.queryByTestId('image-remove-dialog')).toBeNull());
    expect(backend.calls.find(([c]) => c === 'remove_image')![1]).toEqual({ agentId: 'a1', image: 'busybox:latest', force: true });
  });

  it('admins write templates: JSON checked here, the relay names a refused field', async () => {
    const backend = await start('admin');
    await fireEvent.click(screen.getByTestId('nav-templates'));
    await fireEvent.click(await screen.findByTestId('template-new'));
    const editor = screen.getByTestId('template-json');
    await fireEvent.input(editor, { target: { value: '{"name": "web",' } });
    expect(screen.getByTestId('template-syntax')).toHaveTextContent('Not valid JSON');
    expect(screen.getByTestId('template-save')).toBeDisabled();
    await fireEvent.input(editor, { target: { value: '{"name": "web", "spec": {"image": "nginx", "privileged": true}}' } });
    await fireEvent.click(screen.getByTestId('template-save'));
    expect(await screen.findByTestId('template-error')).toHaveTextContent('spec.privileged is not allowed');
    await fireEvent.input(editor, { target: { value: '{"name": "web", "spec": {"image": "nginx"}}' } });
    await fireEvent.click(screen.getByTestId('template-save'));
    await waitFor(() => expect(screen.queryByTestId('template-editor')).toBeNull());
    expect(backend.calls.filter(([c]) => c === 'save_template').at(-1)![1]).toEqual({ json: '{"name": "web", "spec": {"image": "nginx"}}', update: false });
    // Editing an existing one stores a new version.
    await fireEvent.click(screen.getByTestId('template-edit'));
    await waitFor(() => expect((screen.getByTestId('template-json') as HTMLTextAreaElement).value).toBe(zomboid.json));
    await fireEvent.click(screen.getByTestId('template-save'));
    await waitFor(() => expect(backend.calls.filter(([c]) => c === 'save_template').at(-1)![1]).toEqual({ json: zomboid.json, update: true }));
  });
});
