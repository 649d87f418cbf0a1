// The peer baseline for benches/backfill.sh: a plain Node.js script doing `moe2seg backfill`'s
// job. Walks DIR for *.json.gz (MoEngage S3 export files, gzip JSON Lines), streams each through
// zlib and readline, maps every line's `event` with benches/node_map.js's mapping (app_name from
// the line; an export has no moe_request_id), batches the messages into bodies of at most
// 475,000 bytes and 2,500 messages, and POSTs them with fetch to URL/v1/batch: at most 4
// requests in flight per file (readline paused while there are), CONCURRENCY files at once.
// Usage: node benches/node_backfill.js DIR --url URL --key WRITE_KEY [--concurrency N]
// Prints {"files","lines","messages","requests","seconds","events_per_second"} on stdout;
// events_per_second is lines (events read) per second. Exits 1 on any failed request.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const readline = require('readline');
const { mapEvent } = require('./node_map.js');

const MAX_BODY_BYTES = 475_000;
const MAX_BATCH_MESSAGES = 2_500;
const MAX_MESSAGE_BYTES = 32_000; // Segment's per-message limit: larger ones are dropped
const MAX_IN_FLIGHT = 4; // per file
// {"batch":[],"sentAt":""} around the messages, with a 24-character ISO time.
const WRAPPER_BYTES = '{"batch":[],"sentAt":""}'.length + 24;

function usage(msg) {
  if (msg) process.stderr.write(`node_backfill.js: ${msg}\n`);
  process.stderr.write('usage: node benches/node_backfill.js DIR --url URL --key WRITE_KEY [--concurrency N]\n');
  process.exit(2);
}

const args = { concurrency: 4 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--url') args.url = argv[++i];
  else if (a === '--key') args.key = argv[++i];
  else if (a === '--concurrency') args.concurrency = Number(argv[++i]);
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else if (args.dir === undefined) args.dir = a;
  else usage(`unexpected argument ${a}`);
}
if (!args.dir || !args.url || args.key === undefined) usage();
if (!Number.isInteger(args.concurrency) || args.concurrency < 1) usage('--concurrency must be a positive integer');

const endpoint = args.url.replace(/\/+$/, '') + '/v1/batch';
const headers = {
  'Authorization': 'Basic ' + Buffer.from(args.key + ':').toString('base64'),
  'Content-Type': 'application/json',
};
const totals = { files: 0, lines: 0, messages: 0, requests: 0 };

function findExports(dir) {
  const out = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...findExports(p));
    else if (ent.isFile() && ent.name.endsWith('.json.gz')) out.push(p);
  }
  return out.sort();
}

async function post(body) {
  const res = await fetch(endpoint, { method: 'POST', headers, body });
  const text = await res.text(); // read to the end, so the connection goes back to the pool
  if (!res.ok) throw new Error(`POST ${endpoint}: HTTP ${res.status} ${text.slice(0, 200)}`);
  totals.requests++;
}

function sendFile(file) {
  return new Promise((resolve, reject) => {
    const raw = fs.createReadStream(file);
    const input = raw.pipe(zlib.createGunzip());
    const rl = readline.createInterface({ input, crlfDelay: Infinity });
    let batch = [];
    let batchBytes = 0;
    let inFlight = 0;
    const waiting = []; // bodies made while MAX_IN_FLIGHT requests were out
    let ended = false;
    let failed = false;

    const fail = (err) => {
      if (failed) return;
      failed = true;
      rl.close();
      raw.destroy();
      input.destroy();
      reject(new Error(`${file}: ${err.message}`));
    };
    const maybeDone = () => {
      if (ended && inFlight === 0 && waiting.length === 0 && !failed) {
        totals.files++;
        resolve();
      }
    };
    const send = (body) => {
      inFlight++;
      post(body).then(() => {
        inFlight--;
        if (failed) return;
        if (waiting.length) send(waiting.shift());
        else if (inFlight < MAX_IN_FLIGHT && !ended) rl.resume();
        maybeDone();
      }, fail);
    };
    const flush = () => {
      if (batch.length === 0) return;
      const body = `{"batch":[${batch.join(',')}],"sentAt":"${new Date().toISOString()}"}`;
      batch = [];
      batchBytes = 0;
      if (inFlight < MAX_IN_FLIGHT) send(body);
      else waiting.push(body);
      if (inFlight >= MAX_IN_FLIGHT && !ended) rl.pause();
    };

    rl.on('line', (text) => {
      if (failed || !text) return;
      totals.lines++;
      let msg;
      try {
        const line = JSON.parse(text);
        msg = line && typeof line.event === 'object' && line.event !== null
          ? mapEvent(line.event, { app_name: line.app_name }) : null;
      } catch {
        return; // not JSON, or an event the mapping cannot take (e.g. a bad event_time): skipped
      }
      if (!msg) return;
      const json = JSON.stringify(msg);
      const size = Buffer.byteLength(json);
      if (size > MAX_MESSAGE_BYTES) return;
      // batchBytes: the messages and a comma after each (one more than the body has).
      if (batch.length === MAX_BATCH_MESSAGES || batchBytes + size + WRAPPER_BYTES > MAX_BODY_BYTES) flush();
      batch.push(json);
      batchBytes += size + 1;
      totals.messages++;
    });
    rl.on('close', () => {
      if (failed) return;
      ended = true;
      flush();
      maybeDone();
    });
    raw.on('error', fail);
    input.on('error', fail);
    rl.on('error', fail); // readline passes its input's errors on
  });
}

async function main() {
  const started = process.hrtime.bigint();
  const files = findExports(args.dir);
  let next = 0;
  const worker = async () => {
    while (next < files.length) await sendFile(files[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(args.concurrency, files.length) }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({
    ...totals,
    seconds: Number(seconds.toFixed(3)),
    events_per_second: Math.round(totals.lines / seconds),
  }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`node_backfill.js: ${err.message}\n`);
  process.exit(1);
});
