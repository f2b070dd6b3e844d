// The HTTP layer's handling of awkward input: percent-encoded NUL, '/' and
// '\' in the URL, 405 with Allow, empty JSON bodies, and the latency histogram.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer();
  for (const name of ['Prod', 'A', 'Ten']) {
    const r = await srv.req('POST', '/v1/collections', {
      name, vectors: { default: { dim: 1 } }, ...(name === 'Ten' ? { multiTenancy: true } : {}),
    });
    assert.equal(r.status, 200, r.text);
  }
  const t = await srv.req('POST', '/v1/collections/Ten/tenants', { tenants: [{ name: 't1' }] });
  assert.equal(t.status, 200, t.text);
});
after(async () => { if (srv) { await srv.stop(); srv.cleanup(); } });

function errMsg(r) {
  assert.ok(r.json && Array.isArray(r.json.error) && typeof r.json.error[0].message === 'string',
    `expected {"error":[{"message"}]}, got ${r.status} ${r.text}`);
  return r.json.error[0].message;
}

// Sends the request line exactly as given (no client-side URL normalisation).
function rawRequest(method, target) {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(srv.url);
    const sock = net.connect(Number(port), hostname, () => {
      sock.write(`${method} ${target} HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    });
    let data = '';
    sock.on('data', (d) => { data += d; });
    sock.on('end', () => {
      const status = Number(data.split(' ')[1]);
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      let json;
      try { json = JSON.parse(body); } catch { json = undefined; }
      resolve({ status, json, text: data });
    });
    sock.on('error', reject);
  });
}

test('an encoded NUL in a path segment is refused with 400 and does not touch the prefix', async () => {
  const r = await srv.req('DELETE', '/v1/collections/Prod%00-not-prod');
  assert.equal(r.status, 400, r.text);
  assert.match(errMsg(r), /NUL|%00/);
  assert.equal((await srv.req('GET', '/v1/collections/Prod')).status, 200, 'Prod must still exist');
  const lower = await rawRequest('GET', '/v1/collections/Prod%00');
  assert.equal(lower.status, 400, lower.text);
});

test("an encoded '/' in a segment is neither two segments nor a name", async () => {
  for (const target of ['/v1/collections/A%2Ftenants', '/v1/collections/A%2ftenants', '/v1/collections/a%2Fb']) {
    const r = await srv.req('GET', target);
    assert.equal(r.status, 400, `${target}: ${r.text}`);
    assert.match(errMsg(r), /'\/'|%2F/i);
  }
  const del = await srv.req('DELETE', '/v1/collections/A%2Ftenants', { tenants: ['x'] });
  assert.equal(del.status, 400, del.text);
  assert.equal((await srv.req('GET', '/v1/collections/A')).status, 200);
});

test("an encoded '\\' in a segment is refused with 400", async () => {
  for (const target of ['/v1/collections/A%5Cx', '/v1/collections/A%5cx']) {
    const r = await srv.req('GET', target);
    assert.equal(r.status, 400, `${target}: ${r.text}`);
    assert.match(errMsg(r), /'\\'|%5C/i);
  }
});

test('an encoded NUL, / or \\ in a query value is refused with 400', async () => {
  const id = '00000000-0000-4000-8000-000000000001';
  const put = await srv.req('PUT', `/v1/collections/Ten/objects/${id}?tenant=t1`, { vector: [1] });
  assert.equal(put.status, 200, put.text);
  for (const q of ['tenant=t1%00junk', 'tenant=t1%2Fx', 'tenant=t1%5Cx', 'limit=5&tenant=t1%00']) {
    const r = await srv.req('GET', `/v1/collections/Ten/objects/${id}?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.text}`);
    assert.match(errMsg(r), /query|tenant|limit/);
  }
  const listed = await srv.req('GET', '/v1/collections/Ten/objects?tenant=t1%00');
  assert.equal(listed.status, 400, listed.text);
  const ok = await srv.req('GET', `/v1/collections/Ten/objects/${id}?tenant=t1`);
  assert.equal(ok.status, 200, 'plain values still work');
  const enc = await srv.req('GET', `/v1/collections/Ten/objects/${id}?tenant=%74%31`);
  assert.equal(enc.status, 200, 'harmless percent-encoding is still decoded');
});

test('405 carries an Allow header listing the methods the path supports', async () => {
  const r = await srv.req('PATCH', '/v1/collections/Prod');
  assert.equal(r.status, 405);
  assert.match(errMsg(r), /PATCH/);
  const allow = (r.headers.get('allow') || '').split(/,\s*/).sort();
  assert.deepEqual(allow, ['DELETE', 'GET']);
  const c = await srv.req('PUT', '/v1/collections');
  assert.equal(c.status, 405);
  assert.deepEqual((c.headers.get('allow') || '').split(/,\s*/).sort(), ['GET', 'POST']);
  const t = await srv.req('PATCH', '/v1/collections/Prod/tenants');
  assert.deepEqual((t.headers.get('allow') || '').split(/,\s*/).sort(), ['DELETE', 'GET', 'POST', 'PUT']);
});

test('an empty body to a JSON route says what to send', async () => {
  const routes = [
    ['POST', '/v1/collections'],
    ['POST', '/v1/collections/Ten/tenants'],
    ['PUT', '/v1/collections/Ten/tenants'],
    ['DELETE', '/v1/collections/Ten/tenants'],
    ['POST', '/v1/collections/A/objects'],
    ['PUT', '/v1/collections/A/objects/00000000-0000-4000-8000-000000000002'],
    ['POST', '/v1/collections/A/snapshots'],
    ['POST', '/v1/export/filesystem'],
  ];
  for (const [method, p] of routes) {
    const r = await srv.req(method, p, '');
    assert.equal(r.status, 400, `${method} ${p}: ${r.text}`);
    const msg = errMsg(r);
    assert.match(msg, /body is empty/, `${method} ${p}: ${msg}`);
    assert.match(msg, /JSON object/);
    assert.doesNotMatch(msg, /line -1|wrong arguments/);
  }
});

function histogram(text, route) {
  const esc = route.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const buckets = [...text.matchAll(new RegExp(`^shardvault_request_duration_seconds_bucket\\{route="${esc}",le="([^"]+)"\\} (\\d+)$`, 'gm'))]
    .map((m) => [m[1], Number(m[2])]);
  const count = text.match(new RegExp(`^shardvault_request_duration_seconds_count\\{route="${esc}"\\} (\\d+)$`, 'm'));
  const sum = text.match(new RegExp(`^shardvault_request_duration_seconds_sum\\{route="${esc}"\\} ([0-9.e+-]+)$`, 'm'));
  return { buckets, count: count ? Number(count[1]) : 0, sum: sum ? Number(sum[1]) : NaN };
}

test('request latency is a Prometheus histogram per route, counting up', async () => {
  const m1 = await srv.req('GET', '/metrics');
  assert.match(m1.text, /^# TYPE shardvault_request_duration_seconds histogram$/m);
  assert.match(m1.text, /shardvault_http_requests_total\{/, 'existing metrics are kept');
  const h1 = histogram(m1.text, '/v1/collections/{}');
  assert.ok(h1.count >= 1, 'GET /v1/collections/{} ran in before()');
  for (let i = 0; i < 3; i++) assert.equal((await srv.req('GET', '/v1/collections/A')).status, 200);
  const h2 = histogram((await srv.req('GET', '/metrics')).text, '/v1/collections/{}');
  assert.equal(h2.count, h1.count + 3);
  assert.ok(h2.sum >= h1.sum && h2.sum > 0);
  const les = h2.buckets.map(([le]) => le);
  assert.equal(les[0], '0.001');
  assert.ok(les.includes('10'));
  assert.equal(les[les.length - 1], '+Inf');
  for (let i = 1; i < h2.buckets.length; i++) assert.ok(h2.buckets[i][1] >= h2.buckets[i - 1][1], 'cumulative');
  assert.equal(h2.buckets[h2.buckets.length - 1][1], h2.count, '+Inf bucket equals _count');
  const series = m1.text.match(/^shardvault_request_duration_seconds_count\{route="\/v1\/collections"\}/gm) || [];
  assert.equal(series.length, 1, 'one series per route pattern even with several methods');
});
