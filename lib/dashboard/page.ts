/**
 * The dashboard page: one self-contained HTML document (no build step, no dependencies).
 * It connects to `/feed`, draws the nodes on a ring with the messages flowing between
 * them, a card per node (role, term, leader, commit/applied index, log tail coloured by
 * term, voters and learners), the partitions, the backup catalog, and the controls.
 *
 * Memory in the page is bounded: everything it keeps between views lives in the stores of
 * `PAGE_STORES_JS` (event lines, narration already shown, controls awaiting their result,
 * message dots in flight), each with a cap from `PAGE_LIMITS`; the node positions are
 * rebuilt from each view. The stores are plain JavaScript so that tests can load the very
 * code the page runs (`loadPageStores`).
 */

/** The caps of the page's stores. */
export const PAGE_LIMITS = {
  /** Lines in the event log. */
  events: 50,
  /** Narration lines remembered as already shown (the views carry at most 50). */
  seen: 200,
  /** Narration lines taken from one view. */
  narrationPerView: 100,
  /** Controls awaiting their result (older ones are forgotten; their result still shows). */
  pending: 32,
  /** Message dots in flight on the ring. */
  dots: 40,
  /** Log-tail entries drawn per node card. */
  logTail: 20,
} as const;

/** The page's stores: plain JavaScript (it runs in the browser as is). */
export const PAGE_STORES_JS = `
function createStores(limits) {
  const events = [];
  const seen = new Set();
  const seenOrder = [];
  const pending = new Map();
  let dots = 0;
  return {
    addEvent(line) {
      events.unshift(line);
      if (events.length > limits.events) events.length = limits.events;
    },
    events() { return events; },
    narrate(lines) {
      const fresh = [];
      for (const line of lines.slice(-limits.narrationPerView)) {
        if (seen.has(line)) continue;
        seen.add(line);
        seenOrder.push(line);
        fresh.push(line);
        while (seenOrder.length > limits.seen) seen.delete(seenOrder.shift());
      }
      return fresh;
    },
    track(id, control) {
      pending.set(id, control);
      while (pending.size > limits.pending) pending.delete(pending.keys().next().value);
    },
    settle(id) {
      const c = pending.get(id);
      pending.delete(id);
      return c;
    },
    clearPending() { pending.clear(); },
    takeDot() {
      if (dots >= limits.dots) return false;
      dots++;
      return true;
    },
    releaseDot() { if (dots > 0) dots--; },
    limit(name) { return limits[name]; },
    sizes() { return { events: events.length, seen: seen.size, seenOrder: seenOrder.length, pending: pending.size, dots }; },
  };
}
`;

export interface PageStores {
  addEvent(line: string): void;
  events(): string[];
  narrate(lines: string[]): string[];
  track(id: number, control: unknown): void;
  settle(id: number): unknown;
  clearPending(): void;
  takeDot(): boolean;
  releaseDot(): void;
  limit(name: keyof typeof PAGE_LIMITS): number;
  sizes(): { events: number; seen: number; seenOrder: number; pending: number; dots: number };
}

/** The page's own store code, loaded in Node (for tests). */
export function loadPageStores(
  limits: Record<keyof typeof PAGE_LIMITS, number> = PAGE_LIMITS,
): PageStores {
  const create = new Function(`${PAGE_STORES_JS}\nreturn createStores;`)() as (
    l: typeof limits,
  ) => PageStores;
  return create(limits);
}

const escapeAttr = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page. `token` (the in-process demo: a random token made for this server run) is
 * embedded for the page's controls to carry; without it the page takes `?token=…` from its
 * own address (a real cluster's admin secret).
 */
export function dashboardPage(token?: string): string {
  // Function replacers: a `$` in what is inserted is taken literally.
  return PAGE.replace('<!--TOKEN-->', () =>
    token === undefined ? '' : `<meta name="synod-token" content="${escapeAttr(token)}">`,
  )
    .replace('/*STORES*/', () => PAGE_STORES_JS)
    .replace('/*LIMITS*/', () => JSON.stringify(PAGE_LIMITS));
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Synod dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<!--TOKEN-->
<style>
  :root { --bg:#0f1419; --panel:#1a212b; --text:#e6e6e6; --muted:#8b97a6; --leader:#f5b942; --follower:#4aa3ff; --candidate:#c678dd; --down:#e06c75; --learner:#98c379; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--text); }
  header { display:flex; align-items:center; gap:16px; padding:10px 16px; background:var(--panel); }
  header h1 { font-size:18px; margin:0; }
  #status { color:var(--muted); }
  main { display:grid; grid-template-columns: 420px 1fr; gap:16px; padding:16px; }
  #ring { background:var(--panel); border-radius:8px; }
  #cards { display:grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap:12px; align-content:start; }
  .card { background:var(--panel); border-radius:8px; padding:10px 12px; border:2px solid transparent; }
  .card.leader { border-color:var(--leader); }
  .card.down { opacity:.55; border-color:var(--down); }
  .card h2 { margin:0 0 6px; font-size:16px; display:flex; justify-content:space-between; }
  .role { font-size:12px; padding:1px 8px; border-radius:10px; background:#2b3440; }
  .role.leader { background:var(--leader); color:#000; }
  .role.down, .role.stopped { background:var(--down); color:#000; }
  .kv { display:grid; grid-template-columns: auto 1fr; gap:2px 10px; font-variant-numeric: tabular-nums; }
  .kv span:nth-child(odd) { color:var(--muted); }
  .log { display:flex; gap:2px; margin:8px 0; flex-wrap:wrap; min-height:18px; }
  .log i { display:inline-block; min-width:18px; height:18px; font-size:10px; text-align:center; border-radius:3px; font-style:normal; color:#000; }
  .btns { display:flex; gap:6px; flex-wrap:wrap; margin-top:8px; }
  button { background:#2b3440; color:var(--text); border:1px solid #3a4654; border-radius:5px; padding:3px 10px; cursor:pointer; }
  button:hover { background:#36414f; }
  button:disabled { opacity:.4; cursor:default; }
  #side { display:flex; flex-direction:column; gap:12px; }
  .panel { background:var(--panel); border-radius:8px; padding:10px 12px; }
  .panel h3 { margin:0 0 6px; font-size:14px; color:var(--muted); }
  input { background:#0f1419; color:var(--text); border:1px solid #3a4654; border-radius:5px; padding:3px 6px; width:110px; }
  body.offline main { opacity:.45; filter:grayscale(1); }
  #events { max-height:180px; overflow:auto; font-family:ui-monospace, monospace; font-size:12px; color:var(--muted); }
</style>
</head>
<body>
<header><h1>Synod</h1><span id="cluster"></span><span id="status">connecting…</span></header>
<main>
  <div id="side">
    <svg id="ring" width="420" height="360" viewBox="0 0 420 360" aria-label="nodes and messages"></svg>
    <div class="panel" id="controls">
      <h3>Cluster controls</h3>
      <div class="btns">
        <input id="key" placeholder="key" value="greeting"><input id="value" placeholder="value" value="hello">
        <button id="put">Write key</button>
      </div>
      <div class="btns"><button id="heal">Heal network</button><button id="backup">Take backup</button><button id="restore">Restore latest</button></div>
      <div id="result" style="margin-top:6px;color:var(--muted)"></div>
    </div>
    <div class="panel"><h3>Partitions</h3><div id="partitions">none</div></div>
    <div class="panel"><h3>Backups</h3><div id="backups">none</div></div>
    <div class="panel"><h3>Events</h3><div id="events"></div></div>
  </div>
  <div id="cards"></div>
</main>
<script>
/*STORES*/
(() => {
  const meta = document.querySelector('meta[name="synod-token"]');
  const token = meta ? meta.getAttribute('content') : new URLSearchParams(location.search).get('token');
  const stores = createStores(/*LIMITS*/);
  window.synodStores = stores;
  const feed = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/feed' + (token ? '?token=' + encodeURIComponent(token) : '');
  const $ = (id) => document.getElementById(id);
  const NS = 'http://www.w3.org/2000/svg';
  const palette = ['#4aa3ff','#98c379','#e5c07b','#c678dd','#56b6c2','#e06c75','#d19a66','#61afef'];
  let ws, view = null, canControl = false, nextId = 1;
  const positions = new Map();

  function log(line) {
    const text = new Date().toLocaleTimeString() + ' ' + line;
    stores.addEvent(text);
    const ev = $('events');
    const div = document.createElement('div');
    div.textContent = text;
    ev.prepend(div);
    while (ev.childNodes.length > stores.events().length) ev.removeChild(ev.lastChild);
  }

  function control(c) {
    if (!ws || ws.readyState !== 1) return;
    const id = nextId++;
    stores.track(id, c);
    ws.send(JSON.stringify({ id, token, control: c }));
  }

  function connect() {
    ws = new WebSocket(feed);
    ws.onopen = () => { $('status').textContent = 'live'; document.body.classList.remove('offline'); };
    // Gone (the node serving the page stopped or restarted): what is shown is stale and the
    // controls have nowhere to go until the feed is back; the page retries every second.
    ws.onclose = () => {
      stores.clearPending();
      $('status').textContent = 'disconnected, retrying…';
      document.body.classList.add('offline');
      canControl = false;
      renderControls();
      setTimeout(connect, 1000);
    };
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.kind === 'hello') { canControl = m.controls; renderControls(); }
      else if (m.kind === 'view') { view = m.view; render(); }
      else if (m.kind === 'msg') animate(m);
      else if (m.kind === 'result') {
        const c = stores.settle(m.id);
        $('result').textContent = (m.ok ? '✓ ' : '✗ ') + m.message;
        log((c ? c.op + ': ' : '') + m.message);
      }
    };
  }

  function renderControls() {
    for (const b of document.querySelectorAll('button')) b.disabled = !canControl;
    if (canControl) return;
    $('result').textContent = !ws || ws.readyState !== 1
      ? 'disconnected: the controls come back with the feed'
      : meta
        // The token embedded in this page is an earlier run's (the demo was started again).
        ? 'this dashboard restarted since the page was loaded: reload the page to use the controls'
        : 'read-only: open with ?token=SECRET to use the controls';
  }

  function roleOf(n) { return n.up ? (n.role || 'unknown') : n.role === 'stopped' ? 'stopped' : 'down'; }

  function render() {
    $('cluster').textContent = view.cluster;
    const nodes = view.nodes;
    const svg = $('ring');
    const cx = 210, cy = 180, r = 130;
    positions.clear();
    nodes.forEach((n, i) => {
      const a = (2 * Math.PI * i) / Math.max(1, nodes.length) - Math.PI / 2;
      positions.set(n.id, [cx + r * Math.cos(a), cy + r * Math.sin(a)]);
    });
    for (const el of [...svg.querySelectorAll('.node')]) el.remove();
    for (const n of nodes) {
      const [x, y] = positions.get(n.id);
      const g = document.createElementNS(NS, 'g');
      g.setAttribute('class', 'node');
      g.setAttribute('data-node', n.id);
      const c = document.createElementNS(NS, 'circle');
      c.setAttribute('cx', x); c.setAttribute('cy', y); c.setAttribute('r', 30);
      const role = roleOf(n);
      c.setAttribute('fill', role === 'leader' ? 'var(--leader)' : role === 'down' || role === 'stopped' ? 'var(--down)' : role === 'learner' ? 'var(--learner)' : role.includes('candidate') ? 'var(--candidate)' : 'var(--follower)');
      const t = document.createElementNS(NS, 'text');
      t.setAttribute('x', x); t.setAttribute('y', y + 5); t.setAttribute('text-anchor', 'middle'); t.setAttribute('fill', '#000');
      t.textContent = n.id + (n.term !== undefined ? ' · ' + n.term : '');
      g.append(c, t);
      svg.append(g);
    }
    const cards = $('cards');
    cards.replaceChildren(...nodes.map(card));
    // Links down between running nodes (a real cluster): a dashed red line on the ring.
    for (const el of [...svg.querySelectorAll('.linkdown')]) el.remove();
    for (const [x, y] of view.linksDown || []) {
      const a = positions.get(x), b = positions.get(y);
      if (!a || !b) continue;
      const l = document.createElementNS(NS, 'line');
      l.setAttribute('class', 'linkdown');
      l.setAttribute('x1', a[0]); l.setAttribute('y1', a[1]); l.setAttribute('x2', b[0]); l.setAttribute('y2', b[1]);
      l.setAttribute('stroke', 'var(--down)'); l.setAttribute('stroke-width', 2); l.setAttribute('stroke-dasharray', '6 4');
      svg.prepend(l);
    }
    const groups = view.partitions && view.partitions.length ? view.partitions.map((g) => '[' + g.join(', ') + ']').join('  ') : '';
    const down = (view.linksDown || []).map(([x, y]) => x + ' ✕ ' + y).join(', ');
    $('partitions').textContent = [groups, down && 'links down: ' + down].filter(Boolean).join('; ') || 'none';
    $('backups').textContent = view.backups && view.backups.length ? view.backups.map((b) => b.id + ' (' + b.type + ' @' + b.index + ')').join(', ') : 'none';
    if (view.narration) for (const line of stores.narrate(view.narration)) log(line);
  }

  function card(n) {
    const role = roleOf(n);
    const div = document.createElement('div');
    div.className = 'card' + (role === 'leader' ? ' leader' : '') + (n.up ? '' : ' down');
    div.dataset.node = n.id;
    div.dataset.role = role;
    const h = document.createElement('h2');
    h.innerHTML = '<span></span><span class="role"></span>';
    h.firstChild.textContent = n.id;
    h.lastChild.textContent = role;
    h.lastChild.className = 'role ' + role;
    div.append(h);
    const kv = document.createElement('div');
    kv.className = 'kv';
    const rows = [['protocol', n.protocol], ['term', n.term], ['leader', n.leader == null ? '—' : n.leader], ['commit', n.commitIndex], ['applied', n.appliedIndex],
      ['voters', (n.voters || []).join(', ') || '—'], ['learners', (n.learners || []).join(', ') || '—']];
    if (n.extra) for (const [k, v] of Object.entries(n.extra)) rows.push([k, typeof v === 'object' ? JSON.stringify(v) : v]);
    for (const [k, v] of rows) {
      const a = document.createElement('span'); a.textContent = k;
      const b = document.createElement('span'); b.textContent = v === undefined ? '—' : String(v);
      b.dataset.field = k;
      kv.append(a, b);
    }
    div.append(kv);
    const lg = document.createElement('div');
    lg.className = 'log';
    lg.dataset.field = 'log';
    for (const e of (n.logTail || []).slice(-stores.limit('logTail'))) {
      const i = document.createElement('i');
      i.style.background = palette[e.term % palette.length];
      i.title = 'index ' + e.index + ', term ' + e.term + (e.label ? ', ' + e.label : '');
      i.textContent = e.term;
      lg.append(i);
    }
    div.append(lg);
    const btns = document.createElement('div');
    btns.className = 'btns';
    const mk = (label, c) => { const b = document.createElement('button'); b.textContent = label; b.disabled = !canControl; b.onclick = () => control(c); b.dataset.action = c.op; return b; };
    btns.append(n.up ? mk('Stop', { op: 'stop', node: n.id }) : mk('Restart', { op: 'restart', node: n.id }),
      mk('Isolate', { op: 'isolate', node: n.id }), mk('Make leader', { op: 'transfer', to: n.id }));
    div.append(btns);
    return div;
  }

  function animate(m) {
    const a = positions.get(m.from), b = positions.get(m.to);
    if (!a || !b || !stores.takeDot()) return;
    const svg = $('ring');
    const c = document.createElementNS(NS, 'circle');
    c.setAttribute('r', 4);
    c.setAttribute('fill', /vote/i.test(m.type) ? 'var(--candidate)' : /append|accept|heartbeat/i.test(m.type) ? '#fff' : '#aaa');
    svg.append(c);
    const start = performance.now();
    const step = (now) => {
      const t = Math.min(1, (now - start) / 400);
      c.setAttribute('cx', a[0] + (b[0] - a[0]) * t);
      c.setAttribute('cy', a[1] + (b[1] - a[1]) * t);
      if (t < 1) requestAnimationFrame(step); else { c.remove(); stores.releaseDot(); }
    };
    requestAnimationFrame(step);
  }

  $('put').onclick = () => control({ op: 'put', key: $('key').value, value: $('value').value });
  $('heal').onclick = () => control({ op: 'heal' });
  $('backup').onclick = () => control({ op: 'backup' });
  $('restore').onclick = () => control({ op: 'restore' });
  connect();
})();
</script>
</body>
</html>
`;
