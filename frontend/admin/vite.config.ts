import { defineConfig, type ProxyOptions } from 'vite';
import react from '@vitejs/plugin-react';

// Served by the backend at /admin; in development the API is proxied to a local `tollgate serve`.
const api = process.env.TOLLGATE_API ?? 'http://127.0.0.1:8765';

// The API refuses a browser whose Origin is not its own host: the dev proxy presents the
// request as coming from the API's origin (the CSRF token is still checked).
function toApi(ws = false): ProxyOptions {
  return {
    target: api,
    ws,
    changeOrigin: true,
    configure(proxy) {
      proxy.on('proxyReq', (req) => {
        if (req.getHeader('origin')) req.setHeader('origin', api);
      });
      proxy.on('proxyReqWs', (req) => {
        if (req.getHeader('origin')) req.setHeader('origin', api);
      });
    },
  };
}

export default defineConfig({
  base: '/admin/',
  plugins: [react()],
  build: { outDir: 'dist', sourcemap: true, chunkSizeWarningLimit: 1200 },
  server: {
    proxy: {
      '/graphql': toApi(true),
      '/auth': toApi(),
    },
  },
});
