import { defineConfig } from 'vitest/config';

/** `npm run test:long` (OTTER_LONG=1) runs far more cases per property: its tests get far longer. */
const timeout = process.env.OTTER_LONG === '1' ? 30 * 60_000 : 30_000;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: timeout,
    hookTimeout: 30_000,
  },
});
