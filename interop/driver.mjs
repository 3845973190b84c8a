// driver.mjs: runs the real @pikku/redis stores, and the Lua scripts
// through ioredis, on behalf of pikkuredis's Go interop tests
// (interop_test.go), which start it as `node interop/driver.mjs`.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on
// file descriptor 3, in order. Answers do not go to stdout, so that nothing
// a library prints can be taken for one.
//
//   {"id":1,"op":"versions"}
//   {"id":2,"op":"store","url":"redis://...","version":"0.12.3"|"0.12.18",
//    "kind":"channel"|"eventhub"|"session","prefix":"p"|null,
//    "ttlSeconds":2 (optional, "session" only),"method":"addChannel","args":[...]}
//   {"id":3,"op":"script","url":"redis://...","file":"/abs/scripts/subscribe.lua",
//    "numberOfKeys":2,"keys":[...],"args":[...]}
//
// Answers are {"id":n,"ok":true,"result":<value>} ("undefined":true when the
// call returned undefined, which JSON cannot carry) or
// {"id":n,"ok":false,"error":"message"}. A null prefix means "construct
// the store without one", so that it uses its own default. The kind
// "session" is 0.12.18's RedisSessionStore (0.12.3 has none), constructed
// as `new RedisSessionStore(redis, prefix, ttlSeconds)`; without
// ttlSeconds it sets keys with no TTL.
import { createWriteStream, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import * as pikku0123 from '@pikku/redis';
import * as pikku01218 from 'pikku-redis-0.12.18';

const packages = { '0.12.3': pikku0123, '0.12.18': pikku01218 };

// One ioredis client per Redis URL, shared by every store on it. The
// stores must adopt it: @pikku/redis checks `instanceof Redis`, and with a
// second copy of ioredis in node_modules that check fails and the store
// silently dials localhost:6379 instead. Every store is checked below.
const clients = new Map();
function client(url) {
  if (!url) throw new Error('request has no url');
  let c = clients.get(url);
  if (!c) {
    // One retry at most: a broken server is an error soon, not a test that
    // hangs.
    c = new Redis(url, { maxRetriesPerRequest: 1 });
    clients.set(url, c);
  }
  return c;
}

const stores = new Map();
function store(req) {
  const pkg = packages[req.version];
  if (!pkg) throw new Error(`unknown @pikku/redis version ${req.version}`);
  const ttl = req.ttlSeconds ?? null;
  if (ttl !== null && req.kind !== 'session') throw new Error(`ttlSeconds is for the session store, not ${req.kind}`);
  const key = JSON.stringify([req.url, req.version, req.kind, req.prefix, ttl]);
  let s = stores.get(key);
  if (s) return s;
  const kinds = { channel: 'RedisChannelStore', eventhub: 'RedisEventHubStore', session: 'RedisSessionStore' };
  if (!(req.kind in kinds)) throw new Error(`unknown store kind ${req.kind}`);
  const Store = pkg[kinds[req.kind]];
  if (!Store) throw new Error(`@pikku/redis ${req.version} has no ${kinds[req.kind]}`);
  const redis = client(req.url);
  // undefined, not null, for an absent prefix: only undefined takes the
  // constructor's default.
  const args = [redis, req.prefix ?? undefined];
  if (ttl !== null) args.push(ttl);
  s = new Store(...args);
  if (s.redis !== redis) {
    s.redis.disconnect(); // the client it made for itself, dialling elsewhere
    throw new Error(`@pikku/redis ${req.version} did not adopt the ioredis client (two copies of ioredis?): it would talk to another server`);
  }
  stores.set(key, s);
  return s;
}

// One defined command per script file, as an ioredis user would load them.
const commands = new Map();
function command(redis, file, numberOfKeys) {
  const name = 'pikku_' + basename(file, '.lua') + '_' + numberOfKeys;
  if (!commands.has(name)) {
    commands.set(name, readFileSync(file, 'utf8'));
  }
  if (typeof redis[name] !== 'function') {
    redis.defineCommand(name, { numberOfKeys, lua: commands.get(name) });
  }
  return name;
}

// The installed version of a package, read from its own package.json
// (which some packages' "exports" do not let require() reach).
function version(pkgName) {
  const file = new URL(`./node_modules/${pkgName}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(file, 'utf8')).version;
}

async function handle(req) {
  switch (req.op) {
    case 'versions':
      return {
        '@pikku/redis': version('@pikku/redis'),
        'pikku-redis-0.12.18': version('pikku-redis-0.12.18'),
        ioredis: version('ioredis'),
        '@pikku/core': version('@pikku/core'),
        node: process.version,
      };
    case 'store': {
      const s = store(req);
      if (typeof s[req.method] !== 'function') {
        throw new Error(`@pikku/redis ${req.version} ${req.kind} store has no method ${req.method}`);
      }
      return await s[req.method](...(req.args || []));
    }
    case 'script': {
      const redis = client(req.url);
      const name = command(redis, req.file, req.numberOfKeys);
      return await redis[name](...req.keys, ...req.args);
    }
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const answers = createWriteStream(null, { fd: 3 });
function answer(obj) {
  answers.write(JSON.stringify(obj) + '\n');
}

// Requests are answered one at a time, in order.
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === '') continue;
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    answer({ id: null, ok: false, error: `bad request line: ${err.message}` });
    continue;
  }
  try {
    const result = await handle(req);
    answer(result === undefined ? { id: req.id, ok: true, undefined: true } : { id: req.id, ok: true, result });
  } catch (err) {
    answer({ id: req.id, ok: false, error: String(err && err.message ? err.message : err) });
  }
}
await Promise.all([...clients.values()].map((c) => c.quit().catch(() => c.disconnect())));
answers.end();
