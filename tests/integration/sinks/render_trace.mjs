// Renders a spanprobe Perfetto/Chrome trace file to a PNG with a real
// viewer that runs offline: the Performance panel of the DevTools bundled
// in Debian's headless Chromium (trace_app.html, served by Chromium's own
// remote-debugging port), driven over the DevTools protocol. The file is
// served to it from 127.0.0.1.
//
//   node render_trace.mjs TRACE.json OUT.png [WIDTH HEIGHT]
//
// Used to make docs/sinks-trace.png; needs `apt-get install chromium`.
// Node < 22 needs --experimental-websocket (the script re-runs itself so).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

if (typeof WebSocket === 'undefined') {
  const r = spawnSync(process.execPath, ['--experimental-websocket', ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

const [tracePath, outPath, w = '1600', h = '900'] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'spanprobe-render-'));
const chrome = spawn('chromium', ['--headless=new', '--no-sandbox', '--disable-gpu', `--user-data-dir=${profile}`,
  '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', `--window-size=${w},${h}`, 'about:blank'],
{ stdio: 'ignore' });

// the trace, served on 127.0.0.1 to the panel's loader
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
  res.end(fs.readFileSync(tracePath));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));

try {
  let port;
  for (let i = 0; i < 100 && !port; i++) {
    await sleep(100);
    try { port = fs.readFileSync(path.join(profile, 'DevToolsActivePort'), 'utf8').split('\n')[0]; } catch { /* not yet */ }
  }
  if (!port) throw new Error('chromium did not open its debugging port');
  const page = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()).find((t) => t.type === 'page');
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => { const d = JSON.parse(m.data); if (pending.has(d.id)) { pending.get(d.id)(d); pending.delete(d.id); } };
  await new Promise((r) => { ws.onopen = r; });
  const send = (method, params = {}) => new Promise((r) => { pending.set(++id, r); ws.send(JSON.stringify({ id, method, params })); });
  const click = async (x, y) => {
    for (const type of ['mousePressed', 'mouseReleased']) {
      await send('Input.dispatchMouseEvent', { type, x, y, button: 'left', clickCount: 1 });
    }
  };

  await send('Emulation.setDeviceMetricsOverride', { width: +w, height: +h, deviceScaleFactor: 1, mobile: false });
  // the panel's CSP would refuse our server's URL
  await send('Page.setBypassCSP', { enabled: true });
  const url = `http://127.0.0.1:${server.address().port}/trace.json`;
  await send('Page.navigate', { url: `http://127.0.0.1:${port}/devtools/trace_app.html?loadTimelineFromURL=${url}` });
  await sleep(6000);
  // clicks the first element (shadow DOMs included) whose aria-label
  // matches: the shortcuts tip's close button, the sidebar toggle
  const clickLabel = (re) => send('Runtime.evaluate', { expression: `(() => {
    const all = (root, out = []) => { for (const e of root.querySelectorAll('*')) { out.push(e); if (e.shadowRoot) all(e.shadowRoot, out); } return out; };
    const b = all(document).find((e) => ${re}.test(e.getAttribute('aria-label') || ''));
    if (b) b.click();
    return !!b;
  })()` });
  await clickLabel('/^Close$/');
  await clickLabel('/^Hide sidebar$/');
  await sleep(800);
  // the whole trace: zoom out over the flame chart as far as it goes
  for (let i = 0; i < 10; i++) {
    await send('Input.dispatchMouseEvent', { type: 'mouseWheel', x: +w / 2, y: 400, deltaX: 0, deltaY: 400 });
  }
  await sleep(500);
  // expand the process, then each query's track from the last one up, so
  // that the rows above do not move (21 px each under a 17 px header)
  await click(60, 129);
  await sleep(800);
  const tracks = JSON.parse(fs.readFileSync(tracePath, 'utf8')).filter((e) => e.name === 'thread_name').length;
  for (let k = Math.min(tracks, 8); k >= 1; k--) {
    await click(60, 146 + 21 * (k - 1));
    await sleep(300);
  }
  await sleep(1200);
  const shot = await send('Page.captureScreenshot', { format: 'png' });
  fs.writeFileSync(outPath, Buffer.from(shot.result.data, 'base64'));
  ws.close();
} finally {
  server.close();
  chrome.kill('SIGTERM');
  await sleep(300);
  fs.rmSync(profile, { recursive: true, force: true });
}
