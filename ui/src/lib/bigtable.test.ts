// The fleet table over 5,000 synthetic containers: a page of rows in the DOM, "Show more" adds
// a page, a filter keystroke narrows the whole fleet and goes back to the first page.
import { fireEvent, render, screen } from '@testing-library/svelte';
import { afterEach, describe, expect, it } from 'vitest';
import FleetView from './components/FleetView.svelte';
import { app } from './app.svelte';
import { synthesize } from './synthetic';

describe('a 5,000-container fleet table', () => {
  afterEach(() => app.reset());

  it('renders a page, shows more on demand and filters all rows', async () => {
    const fleet = synthesize(5000);
    app.agents = fleet.agents;
    app.containers = fleet.containers;
    render(FleetView);
    const rows = () => screen.getAllByTestId('container-row');
    expect(rows()).toHaveLength(40);
    expect(screen.getByTestId('visible-count').dataset.count).toBe('5000');
    await fireEvent.click(screen.getByTestId('show-more'));
    expect(rows()).toHaveLength(80);

    // Every agent has zomboid-1, zomboid-11, …, zomboid-91: "zomboid-1" matches two per agent.
    await fireEvent.input(screen.getByTestId('fleet-filter'), { target: { value: 'zomboid-1' } });
    expect(screen.getByTestId('visible-count').dataset.count).toBe('100');
    expect(rows()).toHaveLength(40);
    await fireEvent.input(screen.getByTestId('fleet-filter'), { target: { value: 'zomboid' } });
    expect(screen.getByTestId('visible-count').dataset.count).toBe('500');
    expect(rows()).toHaveLength(40);
    await fireEvent.input(screen.getByTestId('fleet-filter'), { target: { value: 'zomboid-1 eu-1 ' } });
    const names = rows().map((r) => `${r.dataset.agentName}/${r.dataset.containerName}`);
    expect(names).toContain('eu-1/zomboid-1');
  });
});
