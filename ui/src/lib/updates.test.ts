// The image update logic on its own: the index behind the badges, the step line with the pull's
// percentage, the order and tally of "Update all" rows, and what "Update all" takes.
import { describe, expect, it } from 'vitest';
import type { AgentImageUpdates, FleetUpdateEvent, ImageUpdateView } from './backend';
import { fleetRows, fleetTally, indexUpdates, shortDigest, stepText, updatableCount, updateTitle } from './updates';

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const update = (container: string, label: string | null = null): ImageUpdateView => ({
  container, image: 'reg:5000/pz:1', currentDigest: digest('a'), newDigest: digest('b'), foundAt: 1, label,
});
const state = (agentId: string, updates: ImageUpdateView[]): AgentImageUpdates => ({ agentId, checkedAt: 2, updates });

describe('image updates', () => {
  it('indexes updates by agent and container name, and counts what Update all takes', () => {
    const index = indexUpdates({ a1: state('a1', [update('web'), update('pin', 'pinned')]), a2: state('a2', [update('web', 'never')]) });
    expect(Object.keys(index).sort()).toEqual(['a1/pin', 'a1/web', 'a2/web']);
    expect(updatableCount(index)).toBe(1);
    expect(shortDigest(digest('b'))).toBe('sha256:bbbbbbbbbbbb');
    expect(updateTitle(index['a1/pin'])).toBe(
      'A newer build of reg:5000/pz:1 is in the registry (labelled pinned): sha256:aaaaaaaaaaaa runs, sha256:bbbbbbbbbbbb is offered.',
    );
  });

  it('says where an update is, with the pull as a percentage', () => {
    expect(stepText(null)).toBe('Starting the update…');
    expect(stepText({ phase: 'health', message: 'waiting', progress: null })).toBe('Waiting until the new container is healthy…');
    const progress = { image: 'pz:1', current: 40, total: 100, layersDone: 1, layersTotal: 2 };
    expect(stepText({ phase: 'pull', message: 'pulling', progress })).toBe('Pulling the new image: 40 %');
    expect(stepText({ phase: 'pull', message: 'pulling', progress: { ...progress, total: 0 } })).toBe('Pulling the new image…');
    expect(stepText({ phase: 'hook', message: 'exited with 0', progress: null })).toBe('Running the pre-update hook: exited with 0');
  });

  it('orders Update all rows by what needs eyes first and tallies them', () => {
    const row = (container: string, st: FleetUpdateEvent['state'], canary = false): FleetUpdateEvent => ({
      agentId: 'a1', agentName: 'eu-1', container, state: st, canary, detail: '', logs: [], progress: null,
    });
    const items = Object.fromEntries(
      [row('b', 'queued'), row('a', 'updated'), row('c', 'rolled-back', true), row('d', 'updating'), row('e', 'skipped'), row('f', 'queued')].map((r) => [r.container, r]),
    );
    expect(fleetRows(items).map((r) => r.container)).toEqual(['d', 'b', 'f', 'c', 'a', 'e']);
    expect(fleetTally(items)).toEqual({ queued: 2, updating: 1, updated: 1, 'rolled-back': 1, failed: 0, skipped: 1 });
  });
});
