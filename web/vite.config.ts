/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The Go server embeds dist/ (web/embed.go): it serves dist/assets/* as immutable, so every file
// there must carry a content hash in its name, which is Vite's default for assetsDir.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    sourcemap: false,
  },
  test: {
    environment: 'jsdom',
    include: ['src/**/*.test.{ts,tsx}'],
    restoreMocks: true,
    setupFiles: ['src/test/setup.ts'],
    // CI is a loaded 2-core machine where a whole user flow in jsdom can take several seconds;
    // a test that hangs still fails, but one that is merely slow does not.
    testTimeout: 60_000,
  },
});
