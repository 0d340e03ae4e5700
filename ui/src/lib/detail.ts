// Pure helpers for the container detail view: the log viewer's bounded buffer and search, and
// the stats panel's history and rates. Free of Svelte so they are cheap to test.
import type { LogLineView, StatsSample } from './backend';

/** Lines the log viewer keeps; older ones are let go (the container's log keeps them all). */
export const LOG_LIMIT = 5000;
/** Stats samples the charts show: about a minute at one sample per second. */
export const STATS_POINTS = 60;

export interface Line extends LogLineView {
  /** Position in the watch, for keyed rendering. */
  seq: number;
}

/** `lines` then `more`, keeping the newest `limit`; says how many old ones were let go. */
export function appendCapped(lines: Line[], more: Line[], limit = LOG_LIMIT): { lines: Line[]; letGo: number } {
  const all = more.length ? lines.concat(more) : lines;
  const letGo = Math.max(0, all.length - limit);
  return { lines: letGo ? all.slice(letGo) : all, letGo };
}

/** Lines whose text contains every word of `query`, case-insensitively (all when it is blank). */
export function searchLines(lines: Line[], query: string): Line[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return lines;
  return lines.filter((l) => {
    const text = l.text.toLowerCase();
    return words.every((w) => text.includes(w));
  });
}

/** `text` cut into pieces, those equal to a word of `query` (case-insensitive) marked. */
export function highlight(text: string, query: string): { text: string; match: boolean }[] {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (!words.length) return [{ text, match: false }];
  const lower = text.toLowerCase();
  const pieces: { text: string; match: boolean }[] = [];
  let at = 0;
  while (at < text.length) {
    // The earliest next match of any word (longest first on ties).
    let best = -1;
    let len = 0;
    for (const w of words) {
      const i = lower.indexOf(w, at);
      if (i >= 0 && (best < 0 || i < best || (i === best && w.length > len))) {
        best = i;
        len = w.length;
      }
    }
    if (best < 0) break;
    if (best > at) pieces.push({ text: text.slice(at, best), match: false });
    pieces.push({ text: text.slice(best, best + len), match: true });
    at = best + len;
  }
  if (at < text.length) pieces.push({ text: text.slice(at), match: false });
  return pieces;
}

/** One point of the charts: CPU and memory as sampled, I/O as rates since the sample before. */
export interface Point {
  at: number;
  cpuPercent: number;
  memoryUsed: number;
  memoryLimit: number;
  /** Bytes per second, received + sent. */
  netRate: number;
  /** Bytes per second, read + written. */
  blockRate: number;
  pids: number;
}

/** The history with `sample` added (the newest `STATS_POINTS` kept). I/O rates need a
 * previous sample; the first point shows them as 0. Counters that went down (the container
 * restarted) count from zero again. */
export function addSample(history: Point[], raw: StatsSample, rawPrevious: StatsSample | null): Point[] {
  const sample = numbers(raw);
  const previous = rawPrevious && numbers(rawPrevious);
  const at = Date.parse(sample.read);
  const secs = previous ? (at - Date.parse(previous.read)) / 1000 : 0;
  const rate = (now: number, before: number | undefined) =>
    previous && secs > 0 ? Math.max(0, now - (before !== undefined && now >= before ? before : 0)) / secs : 0;
  const point: Point = {
    at,
    cpuPercent: sample.cpuPercent,
    memoryUsed: sample.memoryUsed,
    memoryLimit: sample.memoryLimit,
    netRate: rate(sample.netRx + sample.netTx, previous ? previous.netRx + previous.netTx : undefined),
    blockRate: rate(sample.blockRead + sample.blockWrite, previous ? previous.blockRead + previous.blockWrite : undefined),
    pids: sample.pids,
  };
  const next = history.concat(point);
  return next.length > STATS_POINTS ? next.slice(next.length - STATS_POINTS) : next;
}

/** The sample with every measure a number: the bindings allow null (a NaN on the Rust side). */
function numbers(s: StatsSample) {
  const n = (v: number | null) => (v !== null && Number.isFinite(v) ? v : 0);
  return {
    read: s.read,
    cpuPercent: n(s.cpuPercent),
    memoryUsed: n(s.memoryUsed),
    memoryLimit: n(s.memoryLimit),
    netRx: n(s.netRx),
    netTx: n(s.netTx),
    blockRead: n(s.blockRead),
    blockWrite: n(s.blockWrite),
    pids: n(s.pids),
  };
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `512 B`, `1.5 MiB`, `12 GiB` (binary units, as `docker stats`). */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** SVG polyline points for `values` in a `width`×`height` box, scaled to `max` (or, without
 * one, to a quarter above the largest value, so a steady line sits below the top; a flat line
 * at 0 sits at the bottom). */
export function sparkline(values: number[], width: number, height: number, max?: number): string {
  if (!values.length) return '';
  const largest = Math.max(...values);
  const top = Math.max(max ?? largest * 1.25, largest, Number.EPSILON);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  return values
    .map((v, i) => `${(i * step).toFixed(1)},${(height - (Math.max(0, v) / top) * height).toFixed(1)}`)
    .join(' ');
}

/** An RFC 3339 time as `2026-05-01 14:03:07` in local time (Docker's nanoseconds dropped). */
export function formatTime(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const d = new Date(t);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
