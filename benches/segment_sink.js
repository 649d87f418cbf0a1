// A local stand-in for Segment's HTTP Tracking API for benches/backfill.sh: answers every
// POST /v1/batch with 200 {"success":true} without parsing the body (the bytes are read and
// dropped, only counted), keep-alive on, so that a backfill's figure is the backfill's own.
// Usage: node benches/segment_sink.js PORT_FILE
//   listens on 127.0.0.1 on a free port and writes that port to PORT_FILE (atomically, once
//   listening); on SIGTERM or SIGINT prints {"requests": n, "bytes": b} (POST /v1/batch only;
//   bytes are body bytes) to stdout and exits 0. GET /stats answers the same counts so far (for
//   a harness's per-run figures); anything else gets 404. Neither is counted.
'use strict';
const fs = require('fs');
const http = require('http');

const portFile = process.argv[2];
if (!portFile) {
  process.stderr.write('usage: node benches/segment_sink.js PORT_FILE\n');
  process.exit(2);
}

const OK = Buffer.from('{"success":true}');
const OK_HEADERS = { 'Content-Type': 'application/json', 'Content-Length': OK.length };
let requests = 0;
let bytes = 0;

const server = http.createServer((req, res) => {
  const batch = req.method === 'POST' && req.url === '/v1/batch';
  if (batch) req.on('data', (chunk) => { bytes += chunk.length; });
  else req.resume();
  req.on('end', () => {
    if (batch) {
      requests++;
      res.writeHead(200, OK_HEADERS);
      res.end(OK);
    } else if (req.method === 'GET' && req.url === '/stats') {
      const stats = JSON.stringify({ requests, bytes });
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': stats.length });
      res.end(stats);
    } else {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
    }
  });
});
// Idle keep-alive connections stay open well past any pause between a client's requests.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.requestTimeout = 0;

server.listen(0, '127.0.0.1', () => {
  const tmp = `${portFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${server.address().port}\n`);
  fs.renameSync(tmp, portFile);
});

function stop() {
  fs.writeSync(1, JSON.stringify({ requests, bytes }) + '\n');
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
