// Test setup: jest-dom matchers, and a fresh Tauri IPC mock per test.
import '@testing-library/jest-dom/vitest';
import { clearMocks } from '@tauri-apps/api/mocks';
import { afterEach } from 'vitest';

afterEach(() => clearMocks());
import { cleanup } from '@testing-library/svelte';
afterEach(() => cleanup());
