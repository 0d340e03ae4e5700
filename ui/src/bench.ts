// Benchmark entry (bench.html): mounts the real FleetView (and so the real ContainerTable) over
// synthetic containers, 5,000 by default (`?rows=N`), and records for every keystroke in the
// fleet filter the time from its keydown to the end of the next frame after the table changed.
// scripts/bench-desktop types into the filter over WebDriver and reads `window.zedopsBench`.
import { mount } from 'svelte';
import './app.css';
import FleetView from './lib/components/FleetView.svelte';
import { app } from './lib/app.svelte';
import { synthesize } from './lib/synthetic';
import { emptyFilter, filterRows, makeRow, sortRows } from './lib/table';

interface Sample {
  key: string;
  /** Keydown to the end of the next frame. */
  ms: number;
  /** Keydown to the end of the script work (filtering, Svelte's DOM updates), before layout and paint. */
  scriptMs: number;
  /** Keydown to the input event: the web view's own key handling and editing, before any of ours. */
  inputMs: number;
  /** Keydown to the end of Svelte's update (filter and DOM changes), nothing of the browser's after. */
  svelteMs: number;
  /** Rows matching the filter after this keystroke. */
  matching: number;
}

const params = new URLSearchParams(location.search);
const rows = Number(params.get('rows') ?? 5000);
// `?variant=a,b`: classes on <body> that bench.html's styles use to try layout changes.
for (const v of (params.get('variant') ?? '').split(',').filter(Boolean)) document.body.classList.add(v);
const fleet = synthesize(rows);
app.agents = fleet.agents;
app.containers = fleet.containers;
app.phase = 'signed-in';
app.session = { relay: 'bench', user: 'bench', role: 'viewer', keyringWarning: null };
app.go({ kind: 'fleet' });

const samples: Sample[] = [];
let pending: { key: string; t0: number } | null = null;

// Capture phase on the document: runs before the input's own handlers.
document.addEventListener('keydown', (e) => { pending = { key: e.key, t0: performance.now() }; }, true);
document.addEventListener(
  'input',
  () => {
    const started = pending;
    pending = null;
    if (!started) return;
    const inputMs = performance.now() - started.t0;
    let svelteMs = -1;
    // Bubbling to the window comes after the input's own handler, which queued Svelte's update
    // as a microtask; a microtask queued here runs right after that update.
    window.addEventListener('input', () => queueMicrotask(() => { svelteMs = performance.now() - started.t0; }), { once: true });
    let scriptMs = -1;
    // A task posted now runs after this event's microtasks, where Svelte updates the DOM.
    const afterScript = new MessageChannel();
    afterScript.port1.onmessage = () => { if (scriptMs < 0) scriptMs = performance.now() - started.t0; };
    afterScript.port2.postMessage(null);
    // rAF runs just before the frame's style, layout and paint; a task posted from it runs
    // after that frame is done.
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const matching = Number(document.querySelector('[data-testid="visible-count"]')?.getAttribute('data-count') ?? -1);
        const ms = performance.now() - started.t0;
        samples.push({ key: started.key, ms, scriptMs: scriptMs < 0 ? ms : scriptMs, inputMs, svelteMs, matching });
      };
      channel.port2.postMessage(null);
    });
  },
  true,
);

// `?page=N`: rows rendered per page, to try other sizes than the app's.
const page = Number(params.get('page')) || undefined;
// The filter pass alone (no DOM), in this web view's JavaScript engine: what a keystroke costs
// before Svelte touches a row.
function filterPassMs(): number {
  const all = sortRows(
    fleet.agents.flatMap((a) => (fleet.containers[a.id] ?? []).map((c) => makeRow(a.id, a.name, a.online, c))),
    'name',
    'asc',
  );
  const times: number[] = [];
  for (let i = 0; i < 30; i++) {
    const t0 = performance.now();
    for (const q of ['z', 'zo', 'zomboid', 'eu-1', 'running', 'web 4']) filterRows(all, { ...emptyFilter(), text: q });
    times.push((performance.now() - t0) / 6);
  }
  return times.sort((a, b) => a - b)[15];
}
const filterMs = filterPassMs();

mount(FleetView, { target: document.getElementById('app')!, props: { page } });
(window as unknown as { zedopsBench: unknown }).zedopsBench = { rows, samples, filterMs, ready: true };
