'use strict';
const USAGE = `Push-consume a topic with ali-ons; one JSON line per received message.

  node consumer.js --namesrv 127.0.0.1:9876 --topic T --group CG [--expr '*'|'TagA || TagB']
      [--expect N] [--idle-timeout S] [--stop-after K] [--max-seconds S] [--prop userProp]
      [--parallel 1] [--out FILE] [--verbose]

CLUSTERING model, CONSUME_FROM_FIRST_OFFSET for a new group. Output line:
{"topic","tags","keys","body_len","body_sha1","body"(<=256 bytes),"props":{seq,..},
 "queue_id","queue_offset","msg_id","reconsume_times"} (msg_id = offset id, as ali-ons reports it).
Stops when --expect N distinct msg_ids were seen, or --stop-after K messages were received, or
nothing new for --idle-timeout seconds, or after --max-seconds; then close() persists the offsets
(UPDATE_CONSUMER_OFFSET) and unregisters. Exit 1 if --expect was given and not reached.`;

const { Consumer } = require('ali-ons');
const { parseArgs, bodyFields, JsonLines, makeLogger } = require('./common');

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), {
      namesrv: '', topic: '', group: 'shardmq_test_consumer_js', expr: '*', expect: -1,
      stopAfter: -1, idleTimeout: 30, maxSeconds: 600, prop: [], parallel: 1, out: '-', verbose: false,
    });
  } catch (e) {
    console.error(`error: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) { console.log(USAGE); return 0; }
  if (!args.namesrv || !args.topic) { console.error(`error: --namesrv and --topic are required\n\n${USAGE}`); return 2; }
  const names = [ 'seq', ...args.prop.filter(p => p !== 'seq') ];
  const out = new JsonLines(args.out);
  const seen = new Set();
  let received = 0;
  let dups = 0;
  let lastNew = Date.now();

  const consumer = new Consumer({
    nameSrv: args.namesrv,
    httpclient: {},
    clientIP: '127.0.0.1',
    consumerGroup: args.group,
    consumeFromWhere: 'CONSUME_FROM_FIRST_OFFSET',
    parallelConsumeLimit: Math.max(1, args.parallel),
    logger: makeLogger(args.verbose),
  });
  consumer.on('error', e => { if (args.verbose) console.error('[consumer error]', e.message); });
  consumer.subscribe(args.topic, args.expr, async msg => {
    const props = {};
    for (const n of names) if (msg.properties[n]) props[n] = msg.properties[n];
    const line = { topic: msg.topic, tags: msg.tags, keys: msg.keys || null };
    Object.assign(line, bodyFields(msg.body || Buffer.alloc(0)));
    Object.assign(line, {
      props, queue_id: msg.queueId, queue_offset: msg.queueOffset, msg_id: msg.msgId,
      reconsume_times: msg.reconsumeTimes,
    });
    out.write(line);
    received++;
    if (seen.has(line.msg_id)) dups++;
    else { seen.add(line.msg_id); lastNew = Date.now(); }
  });
  await consumer.ready();

  const t0 = Date.now();
  let reason = null;
  while (!reason) {
    await new Promise(r => setTimeout(r, 100));
    const now = Date.now();
    if (args.expect >= 0 && seen.size >= args.expect) reason = 'expect';
    else if (args.stopAfter >= 0 && received >= args.stopAfter) reason = 'stop-after';
    else if (now - lastNew >= args.idleTimeout * 1000) reason = 'idle-timeout';
    else if (now - t0 >= args.maxSeconds * 1000) reason = 'max-seconds';
  }
  try { await consumer.close(); } catch (e) { console.error(`error: close failed: ${e.message}`); }
  out.close();
  console.error(JSON.stringify({
    reason, received, distinct: seen.size, duplicates: dups, seconds: (Date.now() - t0) / 1000,
  }));
  if (args.expect >= 0 && seen.size < args.expect) {
    console.error(`error: expected ${args.expect} distinct messages, got ${seen.size} (${reason})`);
    return 1;
  }
  return 0;
}

main().then(code => process.exit(code), e => { console.error(`error: ${e.stack || e}`); process.exit(1); });
