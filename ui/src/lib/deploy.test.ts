// The deploy screens' logic on its own: roles, the form's checks, progress, the typed
// confirmation and the editor's JSON check.
import { describe, expect, it } from 'vitest';
import type { VariableView } from './backend';
import { canEditTemplates, canOperate, confirmMatches, filledValues, imageRefError, jsonError, NEW_TEMPLATE, progressPercent, progressText, validateDeploy } from './deploy';

const vars: VariableView[] = [
  { name: 'ADMIN_PASSWORD', description: 'admin password', default: null, required: true, secret: true },
  { name: 'SERVER_NAME', description: '', default: 'servertest', required: true, secret: false },
  { name: 'MOTD', description: '', default: null, required: false, secret: false },
];

describe('deploy logic', () => {
  it('lets operators and admins deploy, only admins edit templates', () => {
    expect([canOperate('admin'), canOperate('operator'), canOperate('viewer'), canOperate(null)]).toEqual([true, true, false, false]);
    expect([canEditTemplates('admin'), canEditTemplates('operator'), canEditTemplates('viewer')]).toEqual([true, false, false]);
  });

  it('checks the form field by field before anything is sent', () => {
    const empty = validateDeploy({ agentId: '', template: '', name: '', values: {} }, vars);
    expect(Object.keys(empty).sort()).toEqual(['ADMIN_PASSWORD', 'agent', 'name', 'template']);
    expect(empty.ADMIN_PASSWORD).toBe('ADMIN_PASSWORD is required: enter a value.');
    // A required variable with a default may be left blank.
    expect(empty.SERVER_NAME).toBeUndefined();
    const bad = validateDeploy({ agentId: 'a1', template: 't', name: '-web', values: { ADMIN_PASSWORD: 'x', MOTD: 'a\nb' } }, vars);
    expect(bad.name).toContain('starting with a letter or digit');
    expect(bad.MOTD).toContain('line breaks');
    expect(validateDeploy({ agentId: 'a1', template: 't', name: 'pz-1', values: { ADMIN_PASSWORD: 's3cret' } }, vars)).toEqual({});
    expect(filledValues({ ADMIN_PASSWORD: 's3cret', SERVER_NAME: '', MOTD: 'hi' })).toEqual({ ADMIN_PASSWORD: 's3cret', MOTD: 'hi' });
  });

  it('turns pull progress into a percentage and a line', () => {
    expect(progressPercent(null)).toBeNull();
    const p = { image: 'nginx:1', current: 3 * 1024 * 1024, total: 12 * 1024 * 1024, layersDone: 1, layersTotal: 3 };
    expect(progressPercent({ ...p, total: 0 })).toBeNull();
    expect(progressPercent(p)).toBe(25);
    expect(progressPercent({ ...p, current: p.total * 2 })).toBe(100);
    expect(progressText(p)).toBe('Pulling nginx:1: 3.00 MiB of 12.0 MiB, 1 of 3 layers');
    expect(progressText({ ...p, current: 0, total: 0, layersDone: 0, layersTotal: 0 })).toBe('Pulling nginx:1: starting');
    expect(progressText({ ...p, layersDone: 0, layersTotal: 1 })).toBe('Pulling nginx:1: 3.00 MiB of 12.0 MiB, 0 of 1 layer');
  });

  it('confirms a removal only with the exact name', () => {
    expect(confirmMatches('web', 'web')).toBe(true);
    expect(confirmMatches(' web ', 'web')).toBe(true);
    expect(confirmMatches('Web', 'web')).toBe(false);
    expect(confirmMatches('we', 'web')).toBe(false);
    expect(confirmMatches('', '')).toBe(false);
  });

  it('checks the editor text as JSON with a name and a spec', () => {
    expect(jsonError(NEW_TEMPLATE)).toBeNull();
    expect(jsonError('')).toContain('empty');
    expect(jsonError('{"name": "x",')).toMatch(/^Not valid JSON: /);
    expect(jsonError('[]')).toContain('JSON object');
    expect(jsonError('{"spec": {}}')).toContain('"name"');
    expect(jsonError('{"name": "x"}')).toContain('"spec"');
  });
});

describe('image references to pull', () => {
  it('accepts references and says what is wrong with the rest', () => {
    expect(imageRefError('nginx:1.27')).toBeNull();
    expect(imageRefError(' 127.0.0.1:5000/zedops/busybox:1 ')).toBeNull();
    expect(imageRefError(`ghcr.io/o/app@sha256:${'a'.repeat(64)}`)).toBeNull();
    expect(imageRefError('')).toMatch(/Enter the image/);
    expect(imageRefError('nginx 1.27')).toMatch(/no spaces/);
    expect(imageRefError('x'.repeat(256))).toMatch(/255/);
    expect(imageRefError('nginx;rm -rf')).toMatch(/no spaces/);
    expect(imageRefError('nginx;rm')).toMatch(/letters, digits/);
  });
});
