// A plain hand-written Node.js mapping of a MoEngage Streams body to Segment track messages,
// the peer baseline for benches/run.sh (docs/performance.md). Same catalog and renames as the
// product, no validation beyond what a typical hand-written bridge does.
// Usage: node benches/node_map.js BODY.json > out.jsonl
// As a module (benches/node_backfill.js): mapEvent(event, { app_name, moe_request_id }) → one
// Segment message object, or null when the event has no name or no user/anonymous id.
'use strict';
const fs = require('fs');
const path = require('path');

const catalog = fs.readFileSync(path.join(__dirname, '../data/event-catalog.tsv'), 'utf8').split('\n').slice(1);
const byCode = new Map();
const byName = new Map();
for (const line of catalog) {
  if (!line.trim()) continue;
  const [name, , , codes] = line.split('\t');
  byName.set(name.toLowerCase(), name);
  for (const c of (codes || '').split(' ')) if (c) byCode.set(c.replace('*', '').toUpperCase(), name);
}
const renames = new Map();
for (const line of fs.readFileSync(path.join(__dirname, '../data/properties.tsv'), 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [name, aliases] = line.split('\t');
  for (const a of [name, ...aliases.split(' ')]) renames.set(a.toLowerCase().replace(/[^a-z0-9]/g, ''), name);
}

// ctx: { app_name, moe_request_id } (from the Streams body; an export line has no moe_request_id).
function mapEvent(e, ctx) {
  const name = byCode.get(String(e.event_code || '').toUpperCase()) || byName.get(String(e.event_name || '').toLowerCase()) || e.event_name;
  const ua = e.user_attributes || {};
  const da = e.device_attributes || {};
  const userId = e.uid != null && e.uid !== '' ? String(e.uid) : undefined;
  const anonymousId = ua.moengage_user_id || da.moengage_device_id || undefined;
  if (!name || (!userId && !anonymousId)) return null;
  const properties = { event_code: e.event_code, moe_request_id: ctx.moe_request_id, app_name: ctx.app_name };
  for (const [k, v] of Object.entries(e.event_attributes || {})) {
    const r = renames.get(k.toLowerCase().replace(/[^a-z0-9]/g, ''));
    properties[r || k] = v;
  }
  const t = Number(e.event_time);
  const ms = t >= 1e11 ? t : t * 1000;
  const traits = { ...ua };
  if (e.email_id) traits.email = e.email_id;
  if (e.mobile_number) traits.phone = e.mobile_number;
  return {
    type: 'track', event: name, userId, anonymousId,
    messageId: 'moe-' + e.event_uuid,
    timestamp: new Date(ms).toISOString(),
    properties,
    context: { library: { name: 'moengage-segment-node', version: '0' }, traits,
               device: { id: da.moengage_device_id || undefined, token: e.push_id || undefined } },
    integrations: { MoEngage: false },
  };
}

module.exports = { mapEvent };

if (require.main === module) {
  const body = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const out = [];
  for (const e of body.events) {
    const m = mapEvent(e, body);
    if (m) out.push(JSON.stringify(m));
  }
  fs.writeFileSync(1, out.join('\n') + '\n');
}
