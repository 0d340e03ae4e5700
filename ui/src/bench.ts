// Benchmark entry (bench.html): mounts the real FleetView (and so the real ContainerTable) over
// synthetic containers, 5,000 by default (`?rows=N`), and records for every keystroke in the
// fleet filter the time from its keydown to the end of the next frame after the table changed.
// scripts/bench-desktop types into the filter over WebDriver and reads `window.zedopsBench`.
import { mount } from 'svelte';
import './app.css';
import FleetView from './lib/components/FleetView.svelte';
import { app } from './lib/app.svelte';
import { synthesize } from './lib/synthetic';

interface Sample {
  key: string;
  /** Keydown to the end of the next frame. */
  ms: number;
  /** Keydown to the end of the script work (filtering, Svelte's DOM updates), before layout and paint. */
  scriptMs: number;
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
        samples.push({ key: started.key, ms, scriptMs: scriptMs < 0 ? ms : scriptMs, matching });
      };
      channel.port2.postMessage(null);
    });
  },
  true,
);

mount(FleetView, { target: document.getElementById('app')! });
(window as unknown as { zedopsBench: unknown }).zedopsBench = { rows, samples, ready: true };
