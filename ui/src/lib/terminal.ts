// The terminal itself (xterm.js with its fit add-on), behind a small interface so the Console
// tab is tested without a real terminal in jsdom.
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

export interface Term {
  cols: number;
  rows: number;
  /** Writes output; `done` runs once it is on screen (the output is then acked). */
  write(data: Uint8Array | string, done?: () => void): void;
  onData(handler: (text: string) => void): void;
  onResize(handler: (size: { cols: number; rows: number }) => void): void;
  /** Fits the terminal to its element. */
  fit(): void;
  focus(): void;
  dispose(): void;
}

export function createTerminal(element: HTMLElement): Term {
  const term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, fontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace' });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(element);
  fit.fit();
  return {
    get cols() { return term.cols; },
    get rows() { return term.rows; },
    write: (data, done) => term.write(data, done),
    onData: (handler) => void term.onData(handler),
    onResize: (handler) => void term.onResize(handler),
    fit: () => fit.fit(),
    focus: () => term.focus(),
    dispose: () => term.dispose(),
  };
}
