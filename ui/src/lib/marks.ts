// Performance marks for scripts/bench-desktop: each is set once per page load, after the next
// frame is painted, and read over WebDriver as performance.timeOrigin + startTime.
export function markOnce(name: string): void {
  if (typeof performance === 'undefined' || typeof requestAnimationFrame === 'undefined') return;
  if (performance.getEntriesByName(name).length > 0 || pending.has(name)) return;
  pending.add(name);
  // rAF runs before the frame is drawn; a task posted from it runs after.
  requestAnimationFrame(() => setTimeout(() => performance.mark(name), 0));
}

const pending = new Set<string>();
