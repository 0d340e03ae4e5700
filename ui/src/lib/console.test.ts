// The Console, Files and "Update agents" logic on its own: bytes, roles, paths, names, versions.
import { describe, expect, it } from 'vitest';
import type { AgentView } from './backend';
import { base64ToBytes, bytesToBase64, consoleKinds, crumbs, joinPath, nameError, parentPath } from './console';
import { compareVersions, standing, updateTargets } from './updates';

describe('console and files logic', () => {
  it('round-trips bytes through base64, also large and binary ones', () => {
    const bytes = new Uint8Array(40_003).map((_, i) => (i * 31) & 0xff);
    const text = bytesToBase64(bytes);
    expect(text.length % 4).toBe(0);
    expect(base64ToBytes(text)).toEqual(bytes);
    expect(base64ToBytes('aGk=')).toEqual(new Uint8Array([104, 105]));
  });

  it('offers the game console to operators, a shell to admins, nothing to viewers', () => {
    expect(consoleKinds('admin')).toEqual(['attach', 'shell']);
    expect(consoleKinds('operator')).toEqual(['attach']);
    expect(consoleKinds('viewer')).toEqual([]);
  });

  it('joins, climbs and splits container paths', () => {
    expect(joinPath('/', 'etc')).toBe('/etc');
    expect(joinPath('/srv/data/', 'a.txt')).toBe('/srv/data/a.txt');
    expect(parentPath('/srv/data')).toBe('/srv');
    expect(parentPath('/srv')).toBe('/');
    expect(parentPath('/')).toBe('/');
    expect(crumbs('/srv/data')).toEqual([
      { name: '/', path: '/' },
      { name: 'srv', path: '/srv' },
      { name: 'data', path: '/srv/data' },
    ]);
  });

  it('refuses names that are not one path component', () => {
    expect(nameError('logs')).toBeNull();
    expect(nameError(' ')).toBe('Enter a name.');
    expect(nameError('a/b')).toContain('"/"');
    expect(nameError('..')).toContain('".."');
  });
});

describe('update agents logic', () => {
  const agent = (name: string, version: string | null, online = true): AgentView => ({
    id: name, name, online, version, lastSeen: null, dockerVersion: null, os: null, arch: null, hostname: null,
  });

  it('compares versions by number, a pre-release before its release', () => {
    expect(compareVersions('0.10.0', '0.9.1')).toBeGreaterThan(0);
    expect(compareVersions('0.2.0', '0.2.0')).toBe(0);
    expect(compareVersions('1.0.0-rc.1', '1.0.0')).toBeLessThan(0);
    expect(compareVersions('0.2', '0.2.1')).toBeLessThan(0);
  });

  it('takes online agents behind the offered version, in order', () => {
    expect(standing('0.1.0', '0.2.0')).toBe('behind');
    expect(standing('0.3.0', '0.2.0')).toBe('ahead');
    expect(standing(null, '0.2.0')).toBe('unknown');
    expect(standing('0.2.0', null)).toBe('unknown');
    const fleet = [agent('a', '0.1.0'), agent('b', '0.2.0'), agent('c', '0.1.5', false), agent('d', '0.1.9')];
    expect(updateTargets(fleet, '0.2.0').map((a) => a.name)).toEqual(['a', 'd']);
    expect(updateTargets(fleet, null)).toEqual([]);
  });
});
