// bench.mjs: the TypeScript side of pikkuredis's comparison runner
// (compare/, `go -C compare run .`). It drives the real @pikku/redis 0.12.3
// stores the way a Node.js server does: N concurrent async loops sharing
// ONE ioredis client, with ioredis's default options.
//
// It lives in interop/ so that its imports resolve from interop/node_modules.
//
// Protocol (as driver.mjs): one JSON request per line on stdin, one JSON
// answer per line on file descriptor 3, in order, so that nothing a library
// prints on stdout can be taken for an answer.
//
//   {"cmd":"hello","url":"redis://...","prefix":"p","workload":{...}}
//       -> versions; connects, and checks that both stores adopted the client
//   {"cmd":"run","op":"subscribe","args":null,"callers":16,"warmupMs":250,"durationMs":1000,"limit":0}
//       -> {"ops":n,"calls":c,"seconds":s,"opsPerSec":x,"p50us":a,"p99us":b}
//
// Answers are {"ok":true,"result":...} or {"ok":false,"error":"message"}.
// The Go runner seeds whatever data an operation needs before each run; the
// key recipe of every operation (which ids, topics and values operation
// number k uses) must stay that of compare/workload.go, whose constants
// arrive in the hello request.
import { createWriteStream, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { RedisChannelStore, RedisEventHubStore } from '@pikku/redis';

let client = null;
let channels = null;
let hub = null;
let wl = null; // workload constants from compare/workload.go

function version(pkgName) {
  const file = new URL(`./node_modules/${pkgName}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

async function hello(req) {
  if (client) throw new Error('hello sent twice');
  // `import { Redis }` is the class @pikku/redis checks with instanceof;
  // with another copy of ioredis the stores would silently dial
  // localhost:6379 instead, so adoption is checked below.
  client = new Redis(req.url);
  channels = new RedisChannelStore(client, req.prefix);
  hub = new RedisEventHubStore(client, req.prefix);
  for (const s of [channels, hub]) {
    if (s.redis !== client) {
      s.redis.disconnect();
      throw new Error('@pikku/redis did not adopt the ioredis client (two copies of ioredis?): it would talk to another server');
    }
  }
  await client.ping();
  wl = req.workload;
  return {
    node: process.version,
    ioredis: version('ioredis'),
    pikkuRedis: version('@pikku/redis'),
  };
}

// The operations, keyed by the names the Go runner sends. k is the number
// of the call within a run, shared by all loops; a is the request's args.
const ops = {
  addChannel: (k) =>
    channels.addChannel({ channelId: 'a' + (k % wl.addChannelIDs), channelName: 'chat', openingData: { room: 'lobby' } }),
  setUserSession: (k) => channels.setUserSession('c' + (k % wl.channels), { userId: 'u-' + (k % wl.channels) }),
  getChannelAndSession: (k) => channels.getChannelAndSession('c' + (k % wl.channels)),
  subscribe: (k) => hub.subscribe('t' + (k % wl.topics), 'c' + (k % wl.pairs)),
  unsubscribe: (k) => hub.unsubscribe('t' + (k % wl.topics), 'c' + (k % wl.pairs)),
  // a: {topic, members}, the topic's size, checked on every call.
  getChannelIdsForTopic: async (k, a) => {
    const ids = await hub.getChannelIdsForTopic(a.topic);
    if (ids.length !== a.members) {
      throw new Error(`topic ${a.topic} has ${ids.length} members, want ${a.members}`);
    }
  },
  removeChannels: (k) => channels.removeChannels(['r' + k]),
};

// run measures one operation: `callers` loops call it back to back, first
// for warmupMs and until every loop has completed a call (not recorded),
// then for durationMs. Calls that end inside the measured window are
// recorded, wherever they started; throughput is recorded calls over
// durationMs, or, when the loops ran out of their `limit` calls, over the
// time from the window's start to the last recorded call's end. The same
// rules as measure.go, so that both sides count alike.
async function run(req) {
  const op = ops[req.op];
  if (!op) throw new Error(`unknown op ${req.op}`);
  const limit = req.limit || 0;
  const warmEnd = performance.now() + req.warmupMs;
  let mStart = null; // the window, once every loop has completed a call
  let mEnd = null;
  let firstDone = 0;
  const samples = [];
  let next = 0;
  let calls = 0; // warm-up included
  let lastEnd = 0;
  let failed = null;
  let ranOut = false;

  async function loop() {
    let mine = 0;
    while (failed === null) {
      const k = next++;
      if (limit > 0 && k >= limit) {
        ranOut = true;
        return;
      }
      const t0 = performance.now();
      if (mEnd !== null && t0 >= mEnd) return;
      try {
        await op(k, req.args);
      } catch (err) {
        failed ??= err;
        return;
      }
      const t1 = performance.now();
      calls++;
      if (++mine === 1 && ++firstDone === req.callers) {
        mStart = Math.max(t1, warmEnd);
        mEnd = mStart + req.durationMs;
      }
      if (mStart !== null && t1 >= mStart && t1 <= mEnd) {
        samples.push(t1 - t0);
        if (t1 > lastEnd) lastEnd = t1;
      }
    }
  }
  await Promise.all(Array.from({ length: req.callers }, loop));
  if (failed !== null) throw new Error(`${req.op}: ${failed && failed.message ? failed.message : failed}`);
  if (samples.length === 0) throw new Error(`${req.op}: no call was recorded (ran out of seeded data during the warm-up, or one call outlasts the window?)`);

  const sorted = Float64Array.from(samples).sort();
  const pct = (q) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] * 1000; // ms -> µs
  const seconds = ranOut ? (lastEnd - mStart) / 1000 : req.durationMs / 1000;
  return { ops: sorted.length, calls, seconds, opsPerSec: sorted.length / seconds, p50us: pct(0.5), p99us: pct(0.99) };
}

async function handle(req) {
  switch (req.cmd) {
    case 'hello':
      return await hello(req);
    case 'run':
      if (!client) throw new Error('run before hello');
      return await run(req);
    default:
      throw new Error(`unknown cmd ${req.cmd}`);
  }
}

const answers = createWriteStream(null, { fd: 3 });
const answer = (obj) => answers.write(JSON.stringify(obj) + '\n');

// Requests are handled one at a time: a run has the process to itself.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  try {
    answer({ ok: true, result: await handle(JSON.parse(line)) });
  } catch (err) {
    answer({ ok: false, error: String(err && err.message ? err.message : err) });
  }
}
if (client) await client.quit().catch(() => client.disconnect());
answers.end();
