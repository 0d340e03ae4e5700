// "Update agents" logic, apart from the component so it is tested on its own: comparing an
// agent's version with the one the relay offers, and which agents an "Update all" takes.
import type { AgentView } from './backend';

/** Compares dotted versions numerically (`0.10.0` > `0.9.1`); a pre-release (`1.0.0-rc.1`)
 * sorts before its release. Negative, zero or positive like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core, pre] = v.split(/-(.*)/s, 2);
    return { nums: core.split('+')[0].split('.').map((n) => Number.parseInt(n, 10) || 0), pre: pre ?? null };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.nums.length, y.nums.length); i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === null) return 1;
  if (y.pre === null) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export type VersionStanding = 'current' | 'behind' | 'ahead' | 'unknown';

/** Where an agent stands against the offered version. */
export function standing(version: string | null, offered: string | null): VersionStanding {
  if (!version || !offered) return 'unknown';
  const d = compareVersions(version, offered);
  return d === 0 ? 'current' : d < 0 ? 'behind' : 'ahead';
}

/** The agents "Update all" takes, in order: online and behind the offered version. */
export function updateTargets(agents: AgentView[], offered: string | null): AgentView[] {
  return agents.filter((a) => a.online && standing(a.version, offered) === 'behind');
}
