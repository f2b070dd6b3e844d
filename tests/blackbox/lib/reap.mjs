// What a test file leaves behind goes when its process ends: every child
// process still running is killed and every temp dir made through the libs is
// removed, whether the tests passed, failed or threw before their own cleanup.
//
// Without it, a test that threw between starting an etcd and its `finally`
// left the etcd (and its servers) running, so the file's process never ended
// and the suite waited forever; and each etcd left 62 MB of preallocated WAL
// in /tmp, enough over a few suite runs to fill the disk so that the next etcd
// could not start. scripts/test.sh runs node with --test-force-exit, so the
// process does end once its tests have, and this 'exit' hook then runs.
import { readdirSync, readFileSync, rmSync } from 'node:fs';

const dirs = new Set();

export function removeAtExit(dir) {
  dirs.add(dir);
  return dir;
}

// Direct children of this process, from /proc (ppid is the 4th field of stat,
// after the command name in parentheses, which may itself hold spaces).
function children() {
  const out = [];
  let names;
  try { names = readdirSync('/proc'); } catch { return out; }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === process.pid) out.push(Number(n));
    } catch { /* gone */ }
  }
  return out;
}

process.on('exit', () => {
  for (const pid of children()) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const d of dirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});
