// The detail view's pure helpers: the log buffer's bound, search and marks, stats rates.
import { describe, expect, it } from 'vitest';
import type { StatsSample } from './backend';
import { addSample, appendCapped, formatBytes, formatTime, highlight, searchLines, sparkline, STATS_POINTS, type Line } from './detail';

const line = (seq: number, text: string, stderr = false): Line => ({ seq, text, stderr, truncated: false });

const sample = (secs: number, over: Partial<StatsSample> = {}): StatsSample => ({
  read: new Date(Date.UTC(2026, 0, 1, 0, 0, secs)).toISOString(),
  cpuPercent: 5,
  memoryUsed: 100,
  memoryLimit: 1000,
  memoryPercent: 10,
  netRx: 0,
  netTx: 0,
  blockRead: 0,
  blockWrite: 0,
  pids: 3,
  ...over,
});

describe('log buffer', () => {
  it('keeps the newest lines and says how many it let go', () => {
    const first = appendCapped([], [line(0, 'a'), line(1, 'b')], 3);
    expect(first).toEqual({ lines: [line(0, 'a'), line(1, 'b')], letGo: 0 });
    const next = appendCapped(first.lines, [line(2, 'c'), line(3, 'd')], 3);
    expect(next.lines.map((l) => l.text)).toEqual(['b', 'c', 'd']);
    expect(next.letGo).toBe(1);
  });

  it('keeps the newest 5,000 of a 10,000-line tail that came in batches', () => {
    let kept: Line[] = [];
    let letGo = 0;
    for (let batch = 0; batch < 10; batch++) {
      const more = Array.from({ length: 1000 }, (_, i) => line(batch * 1000 + i, `line ${batch * 1000 + i + 1}`));
      const next = appendCapped(kept, more);
      kept = next.lines;
      letGo += next.letGo;
    }
    expect(kept.length).toBe(5000);
    expect(letGo).toBe(5000);
    expect(kept[0].text).toBe('line 5001');
    expect(kept[4999].text).toBe('line 10000');
    expect(kept.every((l, i) => l.seq === 5000 + i)).toBe(true);
  });

  it('searches for every word, case-insensitively', () => {
    const lines = [line(0, 'Player joined: Ada'), line(1, 'player left: Bob'), line(2, 'Server saved')];
    expect(searchLines(lines, 'player').map((l) => l.seq)).toEqual([0, 1]);
    expect(searchLines(lines, 'PLAYER bob').map((l) => l.seq)).toEqual([1]);
    expect(searchLines(lines, '  ')).toBe(lines);
  });

  it('marks every occurrence of the search words and keeps the text whole', () => {
    const pieces = highlight('Error: disk error on /data', 'error data');
    expect(pieces.map((p) => p.text).join('')).toBe('Error: disk error on /data');
    expect(pieces.filter((p) => p.match).map((p) => p.text)).toEqual(['Error', 'error', 'data']);
    expect(highlight('nothing here', 'zzz')).toEqual([{ text: 'nothing here', match: false }]);
  });
});

describe('stats history', () => {
  it('turns I/O counters into rates per second and keeps a minute', () => {
    let history = addSample([], sample(0, { netRx: 1000, blockRead: 0 }), null);
    expect(history[0].netRate).toBe(0);
    history = addSample(history, sample(2, { netRx: 5000, netTx: 1000, blockWrite: 4096 }), sample(0, { netRx: 1000 }));
    expect(history[1].netRate).toBe(2500);
    expect(history[1].blockRate).toBe(2048);
    for (let i = 0; i < STATS_POINTS + 5; i++) history = addSample(history, sample(3 + i), sample(2 + i));
    expect(history).toHaveLength(STATS_POINTS);
  });

  it('counts again from zero when the counters went down (the container restarted)', () => {
    const history = addSample([], sample(1, { netRx: 300 }), sample(0, { netRx: 10_000 }));
    expect(history[0].netRate).toBe(300);
  });

  it('formats bytes as docker stats does', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(12.5 * 1024 ** 2)).toBe('12.5 MiB');
    expect(formatBytes(300 * 1024 ** 3)).toBe('300 GiB');
  });

  it('draws a sparkline scaled to its maximum, zero at the bottom', () => {
    expect(sparkline([0, 50, 100], 100, 10, 100)).toBe('0.0,10.0 50.0,5.0 100.0,0.0');
    expect(sparkline([0, 0], 10, 10)).toBe('0.0,10.0 10.0,10.0');
    expect(sparkline([], 10, 10)).toBe('');
    // Without a maximum, a steady line sits below the top.
    expect(sparkline([8, 8], 10, 10)).toBe('0.0,2.0 10.0,2.0');
  });

  it('shows Docker times to the second in local time', () => {
    const iso = '2026-11-23T15:53:53.530686721Z';
    const d = new Date(Date.parse(iso));
    expect(formatTime(iso)).toBe(
      `${d.getFullYear()}-11-${String(d.getDate()).padStart(2, '0')} ${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}:53`,
    );
    expect(formatTime('not a time')).toBe('not a time');
  });
});
