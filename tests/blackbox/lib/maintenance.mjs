// Helpers for the maintenance black-box tests.
import assert from 'node:assert/strict';

export async function until(what, fn, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Waits for a jobs-framework job to finish; returns its record.
export async function waitJobDone(srv, id, timeoutMs = 120000) {
  return until(`job ${id}`, async () => {
    const r = await srv.req('GET', `/v1/jobs/${id}`);
    assert.equal(r.status, 200, r.text);
    return ['SUCCEEDED', 'FAILED', 'CANCELED'].includes(r.json.state) ? r.json : null;
  }, timeoutMs);
}

// POST an agent and wait for it: the finished job.
export async function runAgent(srv, op, body) {
  const r = await srv.req('POST', `/v1/maintenance/${op}`, body);
  assert.equal(r.status, 202, r.text);
  assert.match(r.json.jobId, /^[0-9a-f-]{36}$/);
  return waitJobDone(srv, r.json.jobId);
}

// {collection: [{name, objects, bytes}]} of the COMMITTED snapshots.
export async function snapshotTable(srv, collections) {
  const out = {};
  for (const c of collections) {
    const r = await srv.req('GET', `/v1/collections/${c}/snapshots`);
    out[c] = r.status === 200
      ? r.json.snapshots.filter((s) => s.status === 'COMMITTED')
        .map((s) => ({ name: s.name, objects: s.objects, bytes: s.bytes })).sort((a, b) => a.name.localeCompare(b.name))
      : [];
  }
  return out;
}
