// shardvault web console: a client of the public HTTP API (docs/api.md), no
// dependencies, nothing from another origin. See docs/console.md.
'use strict';

// ---- state ----------------------------------------------------------------
const S = {
  key: sessionStorage.getItem('sv.key') || '',
  authOn: false, // GET /v1/authz/me answered (auth on)
  authKnown: false, // authOn was decided by an answer (200, 401, or 503/404 for "off")
  me: null,      // {keyId, roles, permissions}
  page: null,    // the mounted page
  gen: 0,        // bumps on every navigation: stale timers stop
  errs: {},      // action key -> last error message, shown next to the action
};

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELED', 'COMMITTED', 'COMPLETED', 'SUCCESS']);

// ---- API --------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

const enc = encodeURIComponent;

async function api(method, path, body) {
  const headers = {};
  if (S.key) headers.Authorization = 'Bearer ' + S.key;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'the server did not answer: ' + e.message);
  }
  const text = await r.text();
  let j = null;
  try { j = text ? JSON.parse(text) : null; } catch { j = null; }
  if (!r.ok) {
    const msg = (j && j.error && j.error[0] && j.error[0].message) || `${r.status} ${r.statusText}`;
    if (r.status === 401 && S.authOn && path !== '/v1/authz/me') signOut('the key was refused: ' + msg);
    throw new ApiError(r.status, msg);
  }
  return j !== null ? j : text;
}

// ---- permissions (GET /v1/authz/me) ----------------------------------------
function glob(pat, s) {
  if (pat === '*') return true;
  const re = new RegExp('^' + pat.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$');
  return re.test(s);
}
function matches(sel, name) {
  if (sel === undefined || sel === null) return true;
  const list = Array.isArray(sel) ? sel : [sel];
  return list.some((p) => (name === null ? p === '*' : glob(p, name)));
}
// May the key do action ('read','write','manage','operate') on collection
// (null: the whole server) and tenant (null: the collection as a whole, which
// a permission limited to some tenants does not cover)? Always true with
// auth off.
function can(action, collection = null, tenant = null) {
  if (!S.authOn) return true;
  if (!S.me) return false;
  return (S.me.permissions || []).some((p) => (p.actions || []).includes(action) && matches(p.collections, collection)
    && matches(p.tenants === undefined ? '*' : p.tenants, tenant));
}
// On some collection at least (forms whose targets are picked later: the
// server checks each one).
function canAny(action) {
  if (!S.authOn) return true;
  return !!S.me && (S.me.permissions || []).some((p) => (p.actions || []).includes(action));
}

// ---- DOM helpers ------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}
const fmtNum = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));
function fmtTime(ms) {
  if (!ms) return '–';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}
function fmtDur(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}
function stateBadge(st) {
  const cls = ['SUCCEEDED', 'COMMITTED', 'COMPLETED', 'SUCCESS', 'ACTIVE', 'OK'].includes(st) ? 'good'
    : ['FAILED', 'CANCELED', 'INACTIVE'].includes(st) ? 'bad'
      : ['RUNNING', 'PENDING', 'EXECUTING', 'STARTED', 'TRANSFERRING', 'DELETING', 'OFFLOADING', 'ONLOADING',
        'INITIALIZING', 'RECOVERING'].includes(st) ? 'run' : '';
  return h('span', { class: 'state ' + cls }, st || '–');
}
function bar(pct) {
  const fill = h('span');
  // CSSOM, not a style attribute: the CSP allows only style sheets from 'self'.
  fill.style.width = Math.max(0, Math.min(100, pct || 0)) + '%';
  return h('span', { class: 'bar', role: 'progressbar', 'aria-valuenow': Math.round(pct || 0), title: Math.round(pct || 0) + '%' }, fill);
}
function table(cols, rows) {
  return h('div', { class: 'scroll' }, h('table', null,
    h('thead', null, h('tr', null, cols.map((c) => h('th', { class: c.endsWith('#') ? 'num' : null }, c.replace(/#$/, ''))))),
    h('tbody', null, rows)));
}
const td = (v, cls) => h('td', { class: cls }, v);
const tdn = (v) => h('td', { class: 'num' }, v);

// An action: a button and, next to it, the last error it got. The error is
// kept by key so that a re-render (polling) keeps showing it. `perm` hides
// the button when the key may not do it.
function action(key, label, fn, opt = {}) {
  if (opt.perm && !can(opt.perm, opt.collection === undefined ? null : opt.collection)) return null;
  const err = h('span', { class: 'err', 'data-err': key }, S.errs[key] || '');
  const b = h('button', { type: opt.submit ? 'submit' : 'button', class: opt.cls || null, 'data-action': key }, label);
  const run = async (ev) => {
    if (ev) ev.preventDefault();
    if (opt.confirm && !window.confirm(opt.confirm)) return;
    b.disabled = true;
    delete S.errs[key];
    err.textContent = '';
    try {
      await fn();
    } catch (e) {
      S.errs[key] = e.message;
      err.textContent = e.message;
      const shown = document.querySelector(`[data-err="${CSS.escape(key)}"]`);
      if (shown && shown !== err) shown.textContent = e.message;
    } finally {
      b.disabled = false;
    }
  };
  b.addEventListener('click', run);
  return h('span', { class: 'act' }, b, err);
}
// A failed section load: the message where the data would be.
const loadErr = (e) => h('p', { class: 'err' }, e.message);

// ---- live updates -------------------------------------------------------------
// A page's refresh() resolves true while something it shows is running; the
// console then refreshes again after POLL_MS and stops once nothing runs.
const POLL_MS = 1000;
function setLive(on) {
  const el = $('#live');
  el.textContent = on ? 'live' : 'idle';
  el.className = 'live ' + (on ? 'on' : 'idle');
}
async function refresh() {
  const gen = S.gen;
  const page = S.page;
  if (!page) return;
  clearTimeout(S.timer);
  let running = false;
  try { running = await page.refresh(); } catch (e) { console.error(e); }
  if (gen !== S.gen) return;
  setLive(running);
  if (running) S.timer = setTimeout(refresh, POLL_MS);
}

// ---- auth -------------------------------------------------------------------
// true: go on (signed in, or auth off); false: a key is needed. Any other
// failure (429, a 5xx, no answer) decides nothing: what was known stays, and
// the caller is told (an unknown state is never taken for "auth off").
async function whoami() {
  try {
    S.me = await api('GET', '/v1/authz/me');
    S.authOn = S.authKnown = true;
    return true;
  } catch (e) {
    if (e.status === 401) { S.authOn = S.authKnown = true; S.me = null; return false; }
    if (e.status === 503 || e.status === 404) {
      // the auth service is not running: auth is off, everything is allowed
      S.authOn = false;
      S.authKnown = true;
      S.me = null;
      return true;
    }
    throw e;
  }
}
function signOut(why) {
  S.key = '';
  S.me = null;
  sessionStorage.removeItem('sv.key');
  S.loginMessage = why || '';
  route();
}
function renderWho() {
  const who = $('#who');
  who.replaceChildren();
  if (!S.authOn) { who.append(h('span', { class: 'muted' }, 'auth off')); return; }
  if (S.me) {
    who.append(h('span', { 'data-key': S.me.keyId }, `key ${S.me.keyId} (${(S.me.roles || []).join(', ')})`),
      h('button', { class: 'secondary', type: 'button', onclick: () => signOut('') }, 'Sign out'));
  }
}
function loginPage() {
  const input = h('input', { type: 'password', name: 'key', placeholder: 'sv_…', autocomplete: 'off', required: true });
  const form = h('form', { class: 'login' });
  form.append(h('label', null, 'API key ', input),
    action('login', 'Sign in', async () => {
      S.key = input.value.trim();
      let ok;
      try {
        ok = await whoami();
      } catch (e) {
        S.key = '';
        throw new Error('the key could not be checked: ' + e.message);
      }
      if (!ok) {
        S.key = '';
        throw new Error('the server refused this key (401): check it, or ask an admin for a new one');
      }
      sessionStorage.setItem('sv.key', S.key);
      route();
    }, { submit: true }));
  return {
    mount(v) {
      v.append(h('h1', null, 'Sign in'),
        h('section', null, h('p', null, 'This server has authentication on. Enter an API key; it is kept in this tab\'s session storage only.'),
          S.loginMessage ? h('p', { class: 'err' }, S.loginMessage) : null, form));
      input.focus();
    },
    async refresh() { return false; },
  };
}

// ---- pages --------------------------------------------------------------------
const pages = {};

// Overview: version, collections with counts, running jobs, a rate chart.
pages.overview = () => {
  const meta = h('dl', { class: 'kv' });
  const colls = h('div');
  const jobs = h('div');
  const chart = h('div');
  const nodes = h('div');
  const cache = h('div');
  const openName = h('input', { name: 'collection', placeholder: 'collection name' });
  const samples = []; // {t, written, requests}
  let tick = 0;
  return {
    mount(v) {
      v.append(h('h1', null, 'Overview'),
        h('div', { class: 'grid' },
          h('section', null, h('h2', null, 'Server'), meta),
          h('section', null, h('h2', null, 'Rates (sampled every second from /metrics)'), chart)),
        h('section', null, h('h2', null, 'Collections'),
          h('form', { 'data-form': 'open' }, openName, action('open', 'Open', async () => {
            const name = openName.value.trim();
            if (!name) throw new Error('type a collection name first');
            await api('GET', '/v1/collections/' + enc(name));
            location.hash = '#/collection/' + enc(name);
          }, { submit: true, cls: 'secondary' })),
          colls),
        h('section', null, h('h2', null, 'Running jobs'), jobs),
        h('div', { class: 'grid' },
          h('section', null, h('h2', null, 'Nodes'), nodes),
          h('section', null, h('h2', null, 'Shard cache'), cache)));
    },
    async refresh() {
      const t = tick++;
      await Promise.all([
        sampleMetrics(samples).then(() => drawChart(chart, samples)),
        t % 5 === 0 ? loadMeta(meta) : null,
        t % 5 === 0 ? loadCollections(colls) : null,
        t % 5 === 0 ? loadNodes(nodes) : null,
        t % 5 === 0 ? loadCache(cache) : null,
        loadRunningJobs(jobs),
      ]);
      return true; // the chart samples every second while the page is shown
    },
  };
};

function fmtUptime(s) {
  if (typeof s !== 'number') return '–';
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
  return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : mm ? `${mm} min ${s % 60} s` : `${s} s`;
}

async function loadMeta(el) {
  try {
    const m = await api('GET', '/v1/meta');
    el.replaceChildren(h('dt', null, 'version'), h('dd', { 'data-version': m.version }, m.version),
      h('dt', null, 'git'), h('dd', null, m.gitSha), h('dt', null, 'node'), h('dd', null, m.node),
      h('dt', null, 'uptime'), h('dd', { 'data-uptime': m.uptimeSeconds }, fmtUptime(m.uptimeSeconds)),
      h('dt', null, 'key'), h('dd', null, S.authOn ? (S.me ? S.me.keyId : '–') : 'auth off'));
  } catch (e) { el.replaceChildren(loadErr(e)); }
}

async function loadCollections(el) {
  try {
    const { collections } = await api('GET', '/v1/collections');
    const shards = await Promise.all(collections.map((c) => api('GET', `/v1/collections/${enc(c.name)}/shards`)
      .then((r) => r.shards).catch(() => null)));
    const rows = collections.map((c, i) => {
      const sh = shards[i];
      const objects = sh ? sh.reduce((a, s) => a + (s.objects || 0), 0) : null;
      const bytes = sh ? sh.reduce((a, s) => a + (s.bytes || 0), 0) : null;
      return h('tr', { 'data-collection': c.name },
        td(h('a', { href: '#/collection/' + enc(c.name) }, c.name)),
        tdn(c.multiTenancy ? 'per tenant' : c.shards), td(c.multiTenancy ? 'yes' : 'no'),
        h('td', { class: 'num count' }, fmtNum(objects)), tdn(fmtBytes(bytes)));
    });
    el.replaceChildren(rows.length ? table(['name', 'shards#', 'multi-tenant', 'objects#', 'bytes#'], rows)
      : h('p', { class: 'muted' }, 'No collections yet.'));
  } catch (e) { el.replaceChildren(loadErr(e)); }
}

async function loadNodes(el) {
  try {
    const { nodes } = await api('GET', '/v1/nodes');
    el.replaceChildren(nodes.length > 1 || (nodes[0] && nodes[0].url && nodes.length) ? table(['node', 'state', 'shards#', 'objects#', 'version', 'url'],
      nodes.map((n) => h('tr', { 'data-node': n.name }, td(n.name), td(stateBadge(n.status === 'HEALTHY' ? 'OK' : n.status)),
        tdn(fmtNum(n.shards)), tdn(fmtNum(n.objects)), td(n.version || '–'), td(n.url || '–', 'wrap'))))
      : h('p', { class: 'muted' }, 'One node.'));
  } catch (e) { el.replaceChildren(loadErr(e)); }
}

// Cache use against its quota (the registry), shards by state.
function cacheSummary(r) {
  const pct = r.cacheQuotaBytes ? (100 * r.cacheBytes) / r.cacheQuotaBytes : 0;
  return [h('p', null, bar(pct), ' ', h('span', { 'data-cache-bytes': r.cacheBytes }, fmtBytes(r.cacheBytes)), ' of ',
    fmtBytes(r.cacheQuotaBytes), ` (${pct.toFixed(1)}%); hydrations: ${fmtNum(r.hydrationsRunning)} running, ${fmtNum(r.hydrationsQueued)} queued`),
  h('p', null, Object.entries(r.shards || {}).filter(([, n]) => n).map(([st, n]) => h('span', { class: 'act' }, stateBadge(st), ' ', fmtNum(n), ' ')))];
}
async function loadCache(el) {
  try {
    el.replaceChildren(...cacheSummary(await api('GET', '/v1/registry')));
  } catch (e) { el.replaceChildren(loadErr(e)); }
}

async function loadRunningJobs(el) {
  try {
    const [run, pend] = await Promise.all([api('GET', '/v1/jobs?state=RUNNING'), api('GET', '/v1/jobs?state=PENDING')]);
    const jobs = [...run.jobs, ...pend.jobs];
    el.replaceChildren(jobs.length ? jobsTable(jobs) : h('p', { class: 'muted' }, 'Nothing running or waiting.'));
  } catch (e) { el.replaceChildren(loadErr(e)); }
}

function parseMetrics(text) {
  let written = 0, requests = 0;
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const sp = line.lastIndexOf(' ');
    const name = line.slice(0, sp).replace(/\{.*$/, '');
    const val = Number(line.slice(sp + 1));
    if (name === 'shardvault_objects_written_total') written += val;
    else if (name === 'shardvault_http_requests_total') requests += val;
  }
  return { written, requests };
}
async function sampleMetrics(samples) {
  try {
    const text = await api('GET', '/metrics');
    samples.push({ t: Date.now(), ...parseMetrics(typeof text === 'string' ? text : '') });
    if (samples.length > 121) samples.shift(); // 2 minutes
    samples.error = null;
  } catch (e) { samples.error = e.message; }
}
function drawChart(el, samples) {
  const W = 600, H = 130, P = 24;
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000 || 1;
    rates.push({ w: Math.max(0, (samples[i].written - samples[i - 1].written) / dt),
      r: Math.max(0, (samples[i].requests - samples[i - 1].requests) / dt) });
  }
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...rates.map((x) => Math.max(x.w, x.r)));
  const n = 120;
  const pts = (k) => rates.map((x, i) => {
    const px = P + ((n - rates.length + i) / (n - 1)) * (W - P - 4);
    const py = H - 14 - (x[k] / max) * (H - 24);
    return px.toFixed(1) + ',' + py.toFixed(1);
  }).join(' ');
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  add('line', { x1: P, y1: H - 14, x2: W, y2: H - 14 });
  add('line', { x1: P, y1: 10, x2: W, y2: 10 });
  add('text', { x: 0, y: 14 }, max < 10 ? max.toFixed(1) : Math.round(max));
  add('text', { x: 0, y: H - 14 }, '0');
  add('text', { x: P, y: H - 2 }, '−2 min');
  add('text', { x: W - 30, y: H - 2 }, 'now');
  if (rates.length > 1) {
    add('polyline', { class: 'a', points: pts('w') });
    add('polyline', { class: 'b', points: pts('r') });
  }
  const last = rates[rates.length - 1] || { w: 0, r: 0 };
  el.replaceChildren(svg, h('div', { class: 'legend' },
    h('span', { class: 'a' }, `■ objects written/s: ${last.w.toFixed(1)}`),
    h('span', { class: 'b' }, `■ requests/s: ${last.r.toFixed(1)}`)),
  h('p', { class: 'err' }, samples.error || ''));
}

// Collection: schema, shards, tenants, objects.
pages.collection = (name) => {
  const head = h('div', { class: 'row' });
  const schema = h('div');
  const shards = h('div');
  const tenants = h('section', { hidden: true });
  const tenantsBody = h('div');
  const objs = h('div');
  const one = h('div');
  const idIn = h('input', { name: 'id', placeholder: 'object id (uuid)', size: 38 });
  const tenantIn = h('input', { name: 'tenant', placeholder: 'tenant', hidden: true });
  const limitIn = h('select', { name: 'limit' }, [10, 25, 100].map((n) => h('option', { value: n, selected: n === 25 }, n)));
  const base = '/v1/collections/' + enc(name);
  let cursor = null;
  let coll = null;
  const tq = () => (tenantIn.value.trim() ? '&tenant=' + enc(tenantIn.value.trim()) : '');

  async function page(after) {
    const r = await api('GET', `${base}/objects?limit=${limitIn.value}${after ? '&after=' + enc(after) : ''}${tq()}`);
    cursor = r.next;
    objs.replaceChildren(r.objects.length ? table(['id', 'properties', 'updated'], r.objects.map((o) =>
      h('tr', { 'data-object': o.id }, td(h('a', { href: '#', onclick: (e) => { e.preventDefault(); idIn.value = o.id; getOne(); } }, o.id)),
        td(JSON.stringify(o.properties || {}).slice(0, 120), 'wrap'), td(fmtTime(o.updateTime))))) : h('p', { class: 'muted' }, 'No objects.'),
    h('div', { class: 'row' }, h('span', { class: 'muted' }, `${r.objects.length} shown`),
      cursor ? action('next', 'Next page', () => page(cursor), { cls: 'secondary' }) : h('span', { class: 'muted' }, '(last page)')));
  }
  async function getOne() {
    const id = idIn.value.trim();
    const o = await api('GET', `${base}/objects/${enc(id)}?${tq().slice(1)}`);
    one.replaceChildren(h('pre', { 'data-json': 'object' }, JSON.stringify(o, null, 2)));
  }
  // Tenants: status and its moves. OFFLOADED tenants live in the location
  // (the registry); Activate brings one back (an onload job). The page polls
  // while a tenant is OFFLOADING or ONLOADING.
  async function loadTenants() {
    const { tenants: ts } = await api('GET', base + '/tenants');
    const acts = (t) => {
      const o = { perm: 'manage', collection: name, cls: 'secondary' };
      const set = (st) => () => setTenant(t.name, st);
      if (t.status === 'ACTIVE') return [action('deact:' + t.name, 'Deactivate', set('INACTIVE'), o), action('offload:' + t.name, 'Offload', set('OFFLOADED'), o)];
      if (t.status === 'INACTIVE') return [action('act:' + t.name, 'Activate', set('ACTIVE'), o), action('offload:' + t.name, 'Offload', set('OFFLOADED'), o)];
      if (t.status === 'OFFLOADED') return [action('act:' + t.name, 'Activate (onload)', set('ACTIVE'), o)];
      return [h('span', { class: 'muted' }, 'moving…')];
    };
    tenantsBody.replaceChildren(ts.length ? table(['tenant', 'status', 'node', 'objects#', ''], ts.map((t) =>
      h('tr', { 'data-tenant': t.name }, td(t.name), h('td', { class: 'tenant-state' }, stateBadge(t.status)), td(t.node || '–'),
        tdn(fmtNum(t.objects)), td(h('span', { class: 'act' }, ...acts(t).filter(Boolean))))))
      : h('p', { class: 'muted' }, 'No tenants.'));
    return ts.some((t) => t.status === 'OFFLOADING' || t.status === 'ONLOADING');
  }
  async function setTenant(t, status) {
    await api('PUT', base + '/tenants', { tenants: [{ name: t, status }] });
    await refresh(); // live while it moves
  }
  return {
    mount(v) {
      v.append(h('h1', null, 'Collection ', h('span', { 'data-name': name }, name)), head,
        h('div', { class: 'grid' },
          h('section', null, h('h2', null, 'Schema'), schema),
          h('section', null, h('h2', null, 'Shards'), shards)),
        tenants,
        h('section', null, h('h2', null, 'Objects'),
          h('form', null, tenantIn, h('label', null, 'page size ', limitIn),
            action('browse', 'Load first page', () => page(null), { submit: true })), objs),
        h('section', null, h('h2', null, 'Get one object'),
          h('form', null, idIn, action('get', 'Get', getOne, { submit: true })), one));
      tenants.append(h('h2', null, 'Tenants'), tenantsBody);
      head.append(...[h('a', { href: '#/snapshots/' + enc(name) }, 'Snapshots'),
        action('refresh', 'Refresh', refresh, { cls: 'secondary' }),
        action('delete-collection', 'Delete collection', async () => {
          await api('DELETE', base);
          location.hash = '#/overview';
        }, { perm: 'manage', collection: name, cls: 'danger', confirm: `Delete collection ${name} and all its objects? This cannot be undone.` })]
        .filter(Boolean)); // an action the key may not do is null: nothing drawn
    },
    async refresh() {
      try {
        coll = await api('GET', base);
      } catch (e) {
        schema.replaceChildren(loadErr(e));
        return false;
      }
      const props = coll.properties || [];
      const vecs = coll.vectors || {};
      const vdesc = [];
      if (vecs.default) vdesc.push(`default: ${vecs.default.dim}`);
      for (const [k, x] of Object.entries(vecs.named || {})) vdesc.push(`${k}: ${x.dim}`);
      for (const [k, x] of Object.entries(vecs.multi || {})) vdesc.push(`${k} (multi): ${x.dim}`);
      schema.replaceChildren(h('dl', { class: 'kv' },
        h('dt', null, 'shards'), h('dd', null, coll.multiTenancy ? 'one per tenant' : coll.shards),
        h('dt', null, 'multi-tenant'), h('dd', null, coll.multiTenancy ? 'yes' : 'no'),
        h('dt', null, 'vectors'), h('dd', null, vdesc.join(', ') || 'none'),
        h('dt', null, 'created'), h('dd', null, fmtTime(coll.createdAt))),
      props.length ? table(['property', 'type'], props.map((p) => h('tr', null, td(p.name), td(p.type)))) : h('p', { class: 'muted' }, 'No properties.'));
      tenants.hidden = !coll.multiTenancy;
      tenantIn.hidden = !coll.multiTenancy;
      try {
        const r = await api('GET', base + '/shards');
        const total = r.shards.reduce((a, s) => a + (s.objects || 0), 0);
        shards.replaceChildren(h('p', null, h('b', { 'data-count': total }, fmtNum(total)), ' objects, ',
          fmtBytes(r.shards.reduce((a, s) => a + (s.bytes || 0), 0))),
        table(['shard', 'node', 'state', 'objects#', 'bytes#'], r.shards.map((s) => h('tr', { 'data-shard': s.name },
          td(s.name), td(s.node || '–'), td(stateBadge(s.status)), tdn(fmtNum(s.objects)), tdn(fmtBytes(s.bytes))))));
      } catch (e) { shards.replaceChildren(loadErr(e)); }
      let moving = false;
      if (coll.multiTenancy) {
        try { moving = await loadTenants(); } catch (e) { tenantsBody.replaceChildren(loadErr(e)); }
      }
      return moving;
    },
  };
};

// Jobs: every job, live while one runs.
function jobRate(j) {
  if (!j.startedAt) return null;
  const end = j.finishedAt || Date.now();
  const s = Math.max(0.001, (end - j.startedAt) / 1000);
  return { bytes: (j.bytesDone || 0) / s, items: (j.itemsDone || 0) / s, s };
}
function jobEta(j, rate) {
  if (TERMINAL.has(j.state) || !rate) return null;
  // The slowest of the estimates: bytes may be counted ahead of items (a
  // snapshot hashes its capture before it stores the files).
  const est = [];
  if (j.bytesTotal && rate.bytes > 0) est.push((j.bytesTotal - j.bytesDone) / rate.bytes);
  if (j.itemsTotal && rate.items > 0) est.push((j.itemsTotal - j.itemsDone) / rate.items);
  if (j.progress > 0) est.push((rate.s * (100 - j.progress)) / j.progress);
  return est.length ? Math.max(...est) : null;
}
function jobsTable(jobs, withCancel) {
  // Kind and state first, the long id last: at 400 px the table scrolls and
  // what matters is in view.
  return table(['kind', 'state', 'progress', 'collection', 'items#', 'bytes#', 'rate', 'ETA', 'reason', '', 'id'], jobs.map((j) => {
    const rate = jobRate(j);
    return h('tr', { 'data-job': j.id },
      td(j.kind), td(stateBadge(j.state)), td(h('span', null, bar(j.progress), ' ', Math.round(j.progress || 0) + '%')),
      td(h('span', null, j.collection ? h('a', { href: '#/collection/' + enc(j.collection) }, j.collection) : '–',
        j.target ? ' → ' + j.target : '')),
      tdn(`${fmtNum(j.itemsDone)} / ${fmtNum(j.itemsTotal)}`),
      tdn(`${fmtBytes(j.bytesDone)} / ${fmtBytes(j.bytesTotal)}`),
      tdn(rate && !TERMINAL.has(j.state) ? fmtBytes(Math.round(rate.bytes)) + '/s' : '–'),
      tdn(fmtDur(jobEta(j, rate))), td(j.reason || '', 'wrap'),
      td(withCancel && !TERMINAL.has(j.state)
        ? action('cancel:' + j.id, 'Cancel', async () => { await api('POST', `/v1/jobs/${enc(j.id)}/cancel`); await refresh(); },
          { perm: 'operate', collection: j.collection || null, cls: 'danger', confirm: `Cancel the ${j.kind} job ${j.id}?` }) : ''),
      td(j.id, 'muted'));
  }));
}
const JOB_KINDS = ['export', 'import', 'snapshot', 'restore', 'gc', 'offload', 'onload', 'shard-move', 'maintenance'];
pages.jobs = () => {
  const list = h('div');
  const pager = h('div', { class: 'row' });
  const stateSel = h('select', { name: 'state' }, ['', 'PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELED'].map((s) => h('option', { value: s }, s || 'any state')));
  const kindSel = h('select', { name: 'kind' }, ['', ...JOB_KINDS].map((s) => h('option', { value: s }, s || 'any kind')));
  // pages of 100, newest first: `after` is the last id of the page before
  // (the API's cursor); the first page is the live one
  const cursors = [null];
  const restart = () => { cursors.length = 1; refresh(); };
  stateSel.addEventListener('change', restart);
  kindSel.addEventListener('change', restart);
  return {
    mount(v) {
      v.append(h('h1', null, 'Jobs'), h('section', null, h('div', { class: 'row' }, stateSel, kindSel), list, pager));
    },
    async refresh() {
      try {
        const q = new URLSearchParams({ limit: '100' });
        if (stateSel.value) q.set('state', stateSel.value);
        if (kindSel.value) q.set('kind', kindSel.value);
        const after = cursors[cursors.length - 1];
        if (after) q.set('after', after);
        const { jobs, next } = await api('GET', '/v1/jobs?' + q);
        list.replaceChildren(jobs.length ? jobsTable(jobs, true) : h('p', { class: 'muted' }, 'No jobs.'));
        pager.replaceChildren(h('span', { class: 'muted' }, `page ${cursors.length}`),
          cursors.length > 1 ? h('button', { type: 'button', class: 'secondary', 'data-action': 'newer', onclick: () => { cursors.pop(); refresh(); } }, 'Newer') : null,
          next ? h('button', { type: 'button', class: 'secondary', 'data-action': 'older', onclick: () => { cursors.push(next); refresh(); } }, 'Older') : null);
        return jobs.some((j) => !TERMINAL.has(j.state));
      } catch (e) { list.replaceChildren(loadErr(e)); return false; }
    },
  };
};

// Snapshots: per collection; restore jobs; schedules.
pages.snapshots = (name) => {
  const pick = h('select', { name: 'collection' });
  const body = h('div');
  const restores = h('div');
  const scheds = h('div');
  const snapName = h('input', { name: 'snapshot', placeholder: 'snapshot name' });
  const snapDesc = h('input', { name: 'description', placeholder: 'description (optional)' });
  const restoreTargets = {};
  pick.addEventListener('change', () => { location.hash = '#/snapshots/' + enc(pick.value); });
  const base = () => '/v1/collections/' + enc(name);

  const sForm = {
    name: h('input', { name: 'sched-name', placeholder: 'schedule name' }),
    kind: h('select', { name: 'sched-kind' }, h('option', { value: 'snapshot' }, 'snapshot'), h('option', { value: 'export' }, 'export')),
    target: h('input', { name: 'sched-target', placeholder: 'collection (snapshot) or backend (export)' }),
    when: h('input', { name: 'sched-when', placeholder: 'an interval (6h) or a cron line (0 3 * * *)' }),
    keep: h('input', { name: 'sched-keep', type: 'number', min: 1, placeholder: 'keep last', size: 6 }),
  };
  async function createSchedule() {
    const b = { name: sForm.name.value.trim(), kind: sForm.kind.value };
    if (b.kind === 'snapshot') b.collection = sForm.target.value.trim() || name;
    else b.backend = sForm.target.value.trim() || 'filesystem';
    const w = sForm.when.value.trim();
    if (/\s/.test(w)) b.cron = w; else b.every = w;
    if (sForm.keep.value) b.retention = { keepLast: Number(sForm.keep.value) };
    await api('POST', '/v1/schedules', b);
    await refresh();
  }
  async function loadSchedules() {
    try {
      const { schedules } = await api('GET', '/v1/schedules');
      scheds.replaceChildren(schedules.length ? table(['name', 'kind', 'of', 'when', 'next run', 'retention', 'last run', ''], schedules.map((s) =>
        h('tr', { 'data-schedule': s.name }, td(s.name), td(s.kind), td(s.collection || (s.backend + (s.include ? ': ' + s.include.join(', ') : ''))),
          td(s.cron || 'every ' + s.every), td(s.paused ? h('span', { class: 'state' }, 'PAUSED') : fmtTime(s.nextRunAt)),
          td(Object.entries(s.retention || {}).map(([k, n]) => `${k.replace(/^keep/, '')} ${n}`).join(', ') || '–', 'wrap'),
          td(s.lastRun ? h('span', null, stateBadge(s.lastRun.state), ' ', fmtTime(s.lastRun.startedAt)) : '–'),
          td(h('span', { class: 'act' },
            action('pause:' + s.name, s.paused ? 'Resume' : 'Pause', async () => { await api('PUT', '/v1/schedules/' + enc(s.name), { paused: !s.paused }); await refresh(); }, { perm: 'manage', collection: s.collection || null, cls: 'secondary' }),
            action('delsched:' + s.name, 'Delete', async () => { await api('DELETE', '/v1/schedules/' + enc(s.name)); await refresh(); }, { perm: 'manage', collection: s.collection || null, cls: 'danger', confirm: `Delete schedule ${s.name}? What it created is kept.` })))))) : h('p', { class: 'muted' }, 'No schedules.'));
    } catch (e) { scheds.replaceChildren(loadErr(e)); }
  }
  return {
    mount(v) {
      v.append(h('h1', null, 'Snapshots'), h('section', null, h('div', { class: 'row' }, h('label', null, 'collection ', pick))));
      if (name) {
        v.append(h('section', null, h('h2', null, 'Snapshots of ', name),
          can('operate', name) ? h('form', { 'data-form': 'snapshot' }, snapName, snapDesc, action('create-snapshot', 'Create snapshot', async () => {
            await api('POST', base() + '/snapshots', { name: snapName.value.trim(), description: snapDesc.value.trim() || undefined });
            snapName.value = '';
            await refresh();
          }, { submit: true })) : null, body),
        h('section', null, h('h2', null, 'Restores from ', name), restores));
      }
      v.append(h('section', null, h('h2', null, 'Schedules'),
        canAny('manage') ? h('form', { 'data-form': 'schedule' }, sForm.name, sForm.kind, sForm.target, sForm.when, sForm.keep,
          action('create-schedule', 'Create schedule', createSchedule, { submit: true })) : null, scheds));
    },
    async refresh() {
      let running = false;
      try {
        const { collections } = await api('GET', '/v1/collections');
        const names = collections.map((c) => c.name);
        pick.replaceChildren(h('option', { value: '' }, '— pick one —'), ...names.map((n) => h('option', { value: n, selected: n === name }, n)));
        if (name && !names.includes(name)) pick.append(h('option', { value: name, selected: true }, name));
        pick.value = name || '';
      } catch (e) { pick.replaceChildren(h('option', null, e.message)); }
      if (name) {
        try {
          const { snapshots } = await api('GET', base() + '/snapshots');
          running ||= snapshots.some((s) => s.status === 'PENDING' || s.status === 'DELETING');
          // the redraw moves the inputs (kept per snapshot): one being typed
          // in keeps its focus and caret
          const focused = document.activeElement;
          const keep = Object.values(restoreTargets).includes(focused)
            ? { el: focused, a: focused.selectionStart, b: focused.selectionEnd } : null;
          body.replaceChildren(snapshots.length ? table(['name', 'state', 'objects#', 'bytes#', 'uploaded', 'created', 'committed', 'error', ''], snapshots.map((s) => {
            const target = restoreTargets[s.name] || (restoreTargets[s.name] = h('input', { name: 'target', placeholder: 'new collection name', size: 14 }));
            const pct = s.status === 'COMMITTED' ? 100 : s.bytes ? (100 * (s.bytesUploaded || 0)) / s.bytes : 0;
            return h('tr', { 'data-snapshot': s.name },
              td(s.status === 'COMMITTED' ? h('a', { href: `#/snapshot/${enc(name)}/${enc(s.name)}`, title: 'mount and browse' }, s.name) : s.name),
              h('td', { class: 'snap-state' }, stateBadge(s.status)),
              tdn(fmtNum(s.objects)), tdn(fmtBytes(s.bytes)), td(bar(pct)), td(fmtTime(s.createdAt)), td(fmtTime(s.committedAt)),
              td(h('span', { class: 'err' }, s.error || ''), 'wrap'),
              td(h('span', { class: 'act' },
                s.status === 'COMMITTED' && can('operate', name) ? h('span', { class: 'act' }, target, action('restore:' + s.name, 'Restore', async () => {
                  await api('POST', `${base()}/snapshots/${enc(s.name)}/restore`, { target: target.value.trim() });
                  target.value = '';
                  await refresh();
                })) : null,
                action('drop:' + s.name, 'Drop', async () => { await api('DELETE', `${base()}/snapshots/${enc(s.name)}`); await refresh(); },
                  { perm: 'operate', collection: name, cls: 'danger', confirm: `Drop snapshot ${s.name}?` }))));
          })) : h('p', { class: 'muted' }, 'No snapshots yet.'));
          if (keep && keep.el.isConnected) {
            keep.el.focus();
            try { keep.el.setSelectionRange(keep.a, keep.b); } catch { /* not a text input */ }
          }
        } catch (e) { body.replaceChildren(loadErr(e)); }
        try {
          const { jobs } = await api('GET', '/v1/restore-jobs');
          const mine = jobs.filter((j) => j.collection === name);
          running ||= mine.some((j) => j.state === 'PENDING' || j.state === 'EXECUTING');
          restores.replaceChildren(mine.length ? table(['job', 'snapshot', 'into', 'state', 'shards', 'progress', 'error'], mine.map((j) => {
            const tasks = j.tasks || [];
            const done = tasks.filter((t) => t.state === 'COMPLETED' || t.state === 'DONE').length;
            const pct = j.state === 'COMPLETED' ? 100 : tasks.length ? (100 * done) / tasks.length : 0;
            return h('tr', { 'data-restore': j.jobId }, td(j.jobId), td(j.snapshot),
              td(j.state === 'COMPLETED' ? h('a', { href: '#/collection/' + enc(j.target) }, j.target) : j.target),
              h('td', { class: 'restore-state' }, stateBadge(j.state)), tdn(`${done} / ${tasks.length}`), td(bar(pct)), td(h('span', { class: 'err' }, j.error || ''), 'wrap'));
          })) : h('p', { class: 'muted' }, 'No restores.'));
        } catch (e) { restores.replaceChildren(loadErr(e)); }
      } else {
        body.replaceChildren();
      }
      await loadSchedules();
      return running;
    },
  };
};

// Exports: start one, watch its per-shard progress.
pages.exports = (watchArg) => {
  const [wBackend, wId] = watchArg ? watchArg.split('/') : [null, null];
  const backend = h('select', { name: 'backend' }, h('option', { value: 'filesystem' }, 'filesystem'), h('option', { value: 's3' }, 's3'));
  const idIn = h('input', { name: 'export-id', placeholder: 'export id (a-z 0-9 _ -)' });
  const includeBox = h('span', { class: 'act' });
  const mode = h('select', { name: 'export-mode' }, h('option', { value: 'include' }, 'include the ticked'),
    h('option', { value: 'exclude' }, 'exclude the ticked'));
  const list = h('div');
  const detail = h('div');
  async function start() {
    const ticked = [...includeBox.querySelectorAll('input:checked')].map((c) => c.value);
    const body = { id: idIn.value.trim() };
    if (ticked.length) body[mode.value] = ticked; // the API takes include or exclude, not both
    const r = await api('POST', '/v1/export/' + enc(backend.value), body);
    location.hash = `#/exports/${enc(r.backend || backend.value)}/${enc(r.id)}`;
  }
  return {
    mount(v) {
      v.append(...[h('h1', null, 'Exports'),
        canAny('operate') ? h('section', null, h('h2', null, 'Start an export (Parquet)'),
          h('form', { 'data-form': 'export' }, backend, idIn, action('start-export', 'Start export', start, { submit: true })),
          h('div', { class: 'row' }, mode, h('span', { class: 'muted' }, '(none ticked: every collection):'), includeBox)) : null,
        wId ? h('section', null, h('h2', null, `Export ${wId} (${wBackend})`), detail) : null,
        h('section', null, h('h2', null, 'Exports'), list)].filter(Boolean));
      api('GET', '/v1/collections').then(({ collections }) => includeBox.replaceChildren(...collections.map((c) =>
        h('label', null, h('input', { type: 'checkbox', value: c.name, name: 'include' }), ' ', c.name)))).catch((e) => includeBox.replaceChildren(loadErr(e)));
    },
    async refresh() {
      let running = false;
      const all = [];
      for (const b of ['filesystem', 's3']) {
        try {
          const r = await api('GET', '/v1/export/' + b);
          for (const x of r) all.push({ ...x, backend: x.backend || b });
        } catch (e) { if (b === 'filesystem') all.error = e.message; }
      }
      running ||= all.some((x) => !TERMINAL.has(x.status) && x.status !== 'FAILED' && x.status !== 'CANCELED');
      list.replaceChildren(all.length ? table(['id', 'backend', 'state', 'collections', 'started', 'took', 'objects#', ''], all.reverse().map((x) =>
        h('tr', { 'data-export': x.id }, td(h('a', { href: `#/exports/${enc(x.backend)}/${enc(x.id)}` }, x.id)), td(x.backend), td(stateBadge(x.status)),
          td((x.classes || []).join(', '), 'wrap'), td(fmtTime(x.startedAt)), tdn(x.tookInMs ? fmtDur(x.tookInMs / 1000) : '–'), tdn(fmtNum(x.objectsTotal)),
          td(x.status === 'STARTED' || x.status === 'TRANSFERRING'
            ? action('cancel-export:' + x.id, 'Cancel', async () => { await api('DELETE', `/v1/export/${enc(x.backend)}/${enc(x.id)}`); await refresh(); }, { perm: 'operate', cls: 'danger' }) : ''))))
        : h('p', { class: all.error ? 'err' : 'muted' }, all.error || 'No exports yet.'));
      if (wId) {
        try {
          const x = await api('GET', `/v1/export/${enc(wBackend)}/${enc(wId)}`);
          const rows = [];
          let done = 0;
          for (const [c, shards] of Object.entries(x.shardStatus || {})) {
            for (const [s, st] of Object.entries(shards)) {
              done += st.objectsExported || 0;
              rows.push(h('tr', { 'data-export-shard': `${c}/${s}` }, td(c), td(s), h('td', { class: 'shard-state' }, stateBadge(st.status)),
                tdn(fmtNum(st.objectsExported)), tdn(fmtBytes(st.bytesWritten)), td(st.error || st.skipReason || '', 'wrap')));
            }
          }
          const pct = x.status === 'SUCCESS' ? 100 : x.objectsTotal ? (100 * done) / x.objectsTotal : 0;
          running ||= x.status === 'STARTED' || x.status === 'TRANSFERRING';
          detail.replaceChildren(h('dl', { class: 'kv' },
            h('dt', null, 'state'), h('dd', { class: 'export-state' }, stateBadge(x.status)),
            h('dt', null, 'progress'), h('dd', null, bar(pct), ` ${fmtNum(done)} / ${fmtNum(x.objectsTotal)} objects`),
            h('dt', null, 'path'), h('dd', null, x.path || '–'),
            h('dt', null, 'started'), h('dd', null, fmtTime(x.startedAt)),
            h('dt', null, 'completed'), h('dd', null, fmtTime(x.completedAt)),
            x.error ? h('dt', null, 'error') : null, x.error ? h('dd', { class: 'err' }, x.error) : null),
          rows.length ? table(['collection', 'shard', 'state', 'objects#', 'bytes#', 'note'], rows) : h('p', { class: 'muted' }, 'No shard has reported yet.'));
        } catch (e) { detail.replaceChildren(loadErr(e)); }
      }
      return running;
    },
  };
};

// One snapshot, mounted: browse its objects as at the snapshot and restore
// the ticked ones into the live collection.
pages.snapshot = (arg) => {
  const [coll, snap] = (arg || '/').split('/');
  const base = `/v1/collections/${enc(coll)}/snapshots/${enc(snap)}`;
  const state = h('div');
  const objs = h('div');
  const result = h('div');
  const tenantIn = h('input', { name: 'tenant', placeholder: 'tenant (multi-tenant)' });
  const conflict = h('select', { name: 'on-conflict' }, ['replace', 'skip'].map((x) => h('option', { value: x }, 'existing objects: ' + x)));
  let cursor = null;
  let mounted = false;
  const tq = () => (tenantIn.value.trim() ? '&tenant=' + enc(tenantIn.value.trim()) : '');
  async function page(after) {
    const r = await api('GET', `${base}/objects?limit=25${after ? '&after=' + enc(after) : ''}${tq()}`);
    cursor = r.next;
    objs.replaceChildren(r.objects.length ? table(['', 'id', 'properties'], r.objects.map((o) => h('tr', { 'data-object': o.id },
      td(h('input', { type: 'checkbox', name: 'pick', value: o.id })), td(o.id), td(JSON.stringify(o.properties || {}).slice(0, 120), 'wrap'))))
      : h('p', { class: 'muted' }, 'No objects.'),
    h('div', { class: 'row' }, cursor ? action('snap-next', 'Next page', () => page(cursor), { cls: 'secondary' }) : h('span', { class: 'muted' }, '(last page)'),
      action('restore-selected', 'Restore ticked objects', async () => {
        const ids = [...objs.querySelectorAll('input[name=pick]:checked')].map((c) => c.value);
        if (!ids.length) throw new Error('tick the objects to restore first');
        const body = { ids, onConflict: conflict.value };
        if (tenantIn.value.trim()) body.tenant = tenantIn.value.trim();
        const x = await api('POST', base + '/objects/restore', body);
        result.replaceChildren(h('p', { 'data-restored': x.restored }, `restored ${fmtNum(x.restored)}, skipped ${fmtNum(x.skipped)}, missing ${fmtNum(x.missing)}`));
      }, { perm: 'write', collection: coll })));
  }
  return {
    mount(v) {
      v.append(h('h1', null, 'Snapshot ', h('span', { 'data-name': snap }, snap), ' of ', h('a', { href: '#/snapshots/' + enc(coll) }, coll)),
        h('section', null, h('h2', null, 'Mount'), state),
        h('section', null, h('h2', null, 'Objects as at the snapshot'),
          h('form', null, tenantIn, action('snap-browse', 'Load first page', () => page(null), { submit: true })), objs,
          h('div', { class: 'row' }, conflict), result));
    },
    async refresh() {
      try {
        const regs = (await api('GET', '/v1/registry/shards?collection=' + enc(coll))).shards
          .filter((x) => x.source === 'snapshot' && x.shard.startsWith(snap + '@'));
        mounted = regs.length > 0;
        state.replaceChildren(...[h('p', { 'data-mounted': mounted ? 'yes' : 'no' }, mounted
          ? `mounted: ${regs.length} shards, fetched on first read (${regs.filter((x) => x.state === 'AVAILABLE' || x.state === 'SERVING').length} local)`
          : 'not mounted: mount it to read its objects (nothing is fetched until a read)'),
        mounted ? action('unmount', 'Unmount', async () => { await api('DELETE', base + '/mount'); await refresh(); }, { perm: 'operate', collection: coll, cls: 'secondary' })
          : action('mount', 'Mount', async () => { await api('POST', base + '/mount'); await refresh(); }, { perm: 'operate', collection: coll })].filter(Boolean));
        return regs.some((x) => x.state === 'INITIALIZING' || x.state === 'RECOVERING');
      } catch (e) { state.replaceChildren(loadErr(e)); return false; }
    },
  };
};

// Registry: the shard cache (use against quota), shards by state, pins.
pages.registry = () => {
  const summary = h('div');
  const list = h('div');
  const stateSel = h('select', { name: 'state' }, ['', 'NEW', 'INITIALIZING', 'AVAILABLE', 'SERVING', 'ERRORED', 'RECOVERING']
    .map((s) => h('option', { value: s }, s || 'any state')));
  stateSel.addEventListener('change', refresh);
  const shardAct = (x, verb, label, cls) => action(`${verb}:${x.collection}/${x.shard}`, label, async () => {
    await api('POST', `/v1/registry/shards/${enc(x.collection)}/${enc(x.shard)}/${verb}`);
    await refresh();
  }, { perm: 'operate', collection: x.collection, cls });
  return {
    mount(v) {
      v.append(h('h1', null, 'Registry'),
        h('section', null, h('h2', null, 'Cache'), summary),
        h('section', null, h('h2', null, 'Shards from the location (offloaded tenants, mounted snapshots)'),
          h('div', { class: 'row' }, stateSel), list));
    },
    async refresh() {
      let busy = false;
      try {
        const r = await api('GET', '/v1/registry');
        summary.replaceChildren(...cacheSummary(r));
        busy = r.hydrationsRunning > 0 || r.hydrationsQueued > 0;
      } catch (e) { summary.replaceChildren(loadErr(e)); }
      try {
        const q = stateSel.value ? '?state=' + enc(stateSel.value) : '';
        const { shards } = await api('GET', '/v1/registry/shards' + q);
        const remote = shards.filter((x) => x.source !== 'local');
        busy ||= remote.some((x) => x.state === 'INITIALIZING' || x.state === 'RECOVERING');
        list.replaceChildren(remote.length ? table(['collection', 'shard', 'source', 'state', 'hydration', 'local#', 'remote#', 'refs#', 'pinned', 'error', ''],
          remote.map((x) => h('tr', { 'data-registry-shard': `${x.collection}/${x.shard}` },
            td(h('a', { href: '#/collection/' + enc(x.collection) }, x.collection)), td(x.shard), td(x.source),
            h('td', { class: 'reg-state' }, stateBadge(x.state)), td(h('span', null, bar(x.hydration), ` ${Math.round(x.hydration || 0)}%`)),
            tdn(fmtBytes(x.localBytes)), tdn(fmtBytes(x.remoteBytes)), tdn(fmtNum(x.refs)), td(x.pinned ? 'yes' : 'no'),
            td(x.lastError || '', 'wrap'),
            td(h('span', { class: 'act' }, ...[x.pinned ? shardAct(x, 'unpin', 'Unpin', 'secondary') : shardAct(x, 'pin', 'Pin', 'secondary'),
              x.state === 'ERRORED' ? shardAct(x, 'recover', 'Recover', 'secondary') : null].filter(Boolean))))))
          : h('p', { class: 'muted' }, 'No offloaded tenant or mounted snapshot shard.'));
      } catch (e) { list.replaceChildren(loadErr(e)); }
      return busy;
    },
  };
};

// Imports: start one (Parquet from an export backend), watch its files.
pages.imports = (watchArg) => {
  const [wBackend, wId] = watchArg ? watchArg.split('/') : [null, null];
  const f = {
    backend: h('select', { name: 'import-backend' }, h('option', { value: 'filesystem' }, 'filesystem'), h('option', { value: 's3' }, 's3')),
    id: h('input', { name: 'import-id', placeholder: 'import id (a-z 0-9 _ -)' }),
    kind: h('select', { name: 'import-source' }, h('option', { value: 'export' }, 'a shardvault export'), h('option', { value: 'files' }, 'files (globs)')),
    source: h('input', { name: 'import-from', placeholder: 'export id, or lake/part-*.parquet', size: 28 }),
    collection: h('input', { name: 'import-collection', placeholder: 'target collection (optional)' }),
    create: h('input', { type: 'checkbox', name: 'import-create' }),
    conflict: h('select', { name: 'import-conflict' }, ['fail', 'skip', 'replace'].map((x) => h('option', { value: x }, 'on conflict: ' + x))),
  };
  const list = h('div');
  const detail = h('div');
  async function start() {
    const b = { id: f.id.value.trim(), onConflict: f.conflict.value };
    b.source = f.kind.value === 'export' ? { export: f.source.value.trim() }
      : { files: f.source.value.split(',').map((x) => x.trim()).filter(Boolean) };
    if (f.collection.value.trim()) b.collection = f.collection.value.trim();
    if (f.create.checked) b.createCollection = true;
    const r = await api('POST', '/v1/import/' + enc(f.backend.value), b);
    location.hash = `#/imports/${enc(r.backend || f.backend.value)}/${enc(r.id)}`;
  }
  return {
    mount(v) {
      v.append(...[h('h1', null, 'Imports'),
        canAny('operate') ? h('section', null, h('h2', null, 'Import Parquet'),
          h('form', { 'data-form': 'import' }, f.backend, f.id, f.kind, f.source, f.collection,
            h('label', null, f.create, ' create the collection'), f.conflict, action('start-import', 'Start import', start, { submit: true }))) : null,
        wId ? h('section', null, h('h2', null, `Import ${wId} (${wBackend})`), detail) : null,
        h('section', null, h('h2', null, 'Imports (jobs)'), list)].filter(Boolean));
    },
    async refresh() {
      let running = false;
      try {
        const { jobs } = await api('GET', '/v1/jobs?kind=import&limit=50');
        running ||= jobs.some((j) => !TERMINAL.has(j.state));
        list.replaceChildren(jobs.length ? table(['import', 'state', 'progress', 'rows#', 'bytes#', 'reason'], jobs.map((j) => {
          const m = /^\/v1\/import\/([^/]+)\/(.+)$/.exec(j.link || '');
          return h('tr', { 'data-import': j.target || j.id },
            td(m ? h('a', { href: `#/imports/${m[1]}/${m[2]}` }, j.target || j.id) : (j.target || j.id)), td(stateBadge(j.state)),
            td(h('span', null, bar(j.progress), ' ', Math.round(j.progress || 0) + '%')),
            tdn(`${fmtNum(j.itemsDone)} / ${fmtNum(j.itemsTotal)}`), tdn(`${fmtBytes(j.bytesDone)} / ${fmtBytes(j.bytesTotal)}`), td(j.reason || '', 'wrap'));
        })) : h('p', { class: 'muted' }, 'No imports yet.'));
      } catch (e) { list.replaceChildren(loadErr(e)); }
      if (wId) {
        try {
          const x = await api('GET', `/v1/import/${enc(wBackend)}/${enc(wId)}`);
          running ||= x.status === 'STARTED' || x.status === 'TRANSFERRING';
          const rows = (x.files || []).map((fl) => {
            const pct = fl.status === 'SUCCESS' ? 100 : fl.rows ? (100 * (fl.rowsImported || 0)) / fl.rows : 0;
            return h('tr', { 'data-import-file': fl.name }, td(fl.name, 'wrap'), td(fl.collection || '–'), h('td', { class: 'file-state' }, stateBadge(fl.status)),
              td(bar(pct)), tdn(`${fmtNum(fl.rowsImported)} / ${fmtNum(fl.rows)}`), td(fl.error || '', 'wrap'));
          });
          detail.replaceChildren(...[h('dl', { class: 'kv' },
            h('dt', null, 'state'), h('dd', { class: 'import-state' }, stateBadge(x.status)),
            h('dt', null, 'objects'), h('dd', null, `${fmtNum(x.objectsImported)} imported, ${fmtNum(x.objectsSkipped)} skipped, ${fmtNum(x.objectsFailed)} failed`),
            h('dt', null, 'read'), h('dd', null, fmtBytes(x.bytesRead)),
            h('dt', null, 'started'), h('dd', null, x.startedAt || '–'),
            h('dt', null, 'took'), h('dd', null, x.tookInMs ? fmtDur(x.tookInMs / 1000) : '–'),
            x.error ? h('dt', null, 'error') : null, x.error ? h('dd', { class: 'err' }, x.error) : null),
          rows.length ? table(['file', 'collection', 'state', 'progress', 'rows#', 'error'], rows) : h('p', { class: 'muted' }, 'No file opened yet.'),
          (x.errors || []).length ? h('details', null, h('summary', null, `${x.errors.length} row errors (first 100)`),
            table(['file', 'row#', 'id', 'message'], x.errors.map((er) => h('tr', null, td(er.file, 'wrap'), tdn(fmtNum(er.row)), td(er.id || '–'), td(er.message, 'wrap'))))) : null,
          x.status === 'STARTED' || x.status === 'TRANSFERRING'
            ? action('cancel-import', 'Cancel import', async () => { await api('DELETE', `/v1/import/${enc(wBackend)}/${enc(wId)}`); await refresh(); },
              { perm: 'operate', cls: 'danger', confirm: `Cancel import ${wId}?` }) : null].filter(Boolean));
        } catch (e) { detail.replaceChildren(loadErr(e)); }
      }
      return running;
    },
  };
};

// ---- router -------------------------------------------------------------------
async function route() {
  S.gen++;
  clearTimeout(S.timer);
  setLive(false);
  const view = $('#view');
  let ok;
  try {
    ok = await whoami();
  } catch (e) {
    if (!S.authKnown) { // nothing known yet: say so, and try again shortly
      renderWho();
      view.replaceChildren(h('h1', null, 'shardvault'), h('p', { class: 'err', 'data-err': 'whoami' },
        'cannot tell whether this server needs a key: ' + e.message + ' (retrying)'));
      const gen = S.gen;
      S.timer = setTimeout(() => { if (gen === S.gen) route(); }, 2000);
      return;
    }
    ok = !S.authOn || !!S.me; // keep what was known (e.g. a 429 from the rate limit)
  }
  if (!ok && S.key) { // a key kept in this tab that no longer works (revoked, expired)
    S.key = '';
    sessionStorage.removeItem('sv.key');
    S.loginMessage = 'the key kept in this tab was refused (revoked or expired?): sign in again';
  }
  renderWho();
  const hash = location.hash.replace(/^#\/?/, '');
  const [name, ...rest] = hash.split('/');
  let arg = null;
  try {
    arg = rest.length ? rest.map(decodeURIComponent).join('/') : null;
  } catch { /* a malformed address: the overview */ }
  const key = pages[name] && (arg !== null || !rest.length) ? name : 'overview';
  const navOf = { collection: 'overview', snapshot: 'snapshots' };
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === (navOf[key] || key));
  S.page = ok ? pages[key](arg) : loginPage();
  view.replaceChildren();
  S.page.mount(view);
  await refresh();
}

window.addEventListener('hashchange', () => { S.errs = {}; route(); });
route();
