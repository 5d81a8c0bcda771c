import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Kernel tests share the host's netns machinery; running files in parallel
    // on a 2-core machine only adds contention.
    fileParallelism: true,
  },
});
