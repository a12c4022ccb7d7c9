// Builds the browser test's host shell (test/browser/dist) with the same Vite plugins the
// headlamp-plugin toolchain uses for plugins.
import react from '@vitejs/plugin-react';
import { dirname } from 'path';
import { fileURLToPath } from 'url';
import { defineConfig } from 'vite';
import svgr from 'vite-plugin-svgr';

const here = dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  logLevel: 'warn',
  define: { global: 'globalThis', 'process.env.NODE_ENV': '"production"', 'process.env': '{}' },
  plugins: [svgr({ include: '**/*.svg' }), react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    chunkSizeWarningLimit: 100000,
    sourcemap: false,
    minify: false,
  },
});
