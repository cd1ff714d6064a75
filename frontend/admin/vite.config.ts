import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Served by the backend at /admin; in development the API is proxied to a local `tollgate serve`.
const api = process.env.TOLLGATE_API ?? 'http://127.0.0.1:8765';

export default defineConfig({
  base: '/admin/',
  plugins: [react()],
  build: { outDir: 'dist', sourcemap: true, chunkSizeWarningLimit: 1200 },
  server: {
    proxy: {
      '/graphql': { target: api, ws: true },
      '/auth': api,
    },
  },
});
