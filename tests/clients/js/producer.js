'use strict';
const USAGE = `Send COUNT messages with ali-ons and print one JSON line per acknowledged send.

  node producer.js --namesrv 127.0.0.1:9876 --topic T --group PG --count 10000
      [--mode sync] [--tag TagA] [--key-prefix k-] [--prop userProp=v1] [--body-size 64]
      [--start 0] [--inflight 1] [--out FILE] [--verbose]

ali-ons only has a promise-returning send (SEND_MESSAGE_V2); --mode is accepted for symmetry
and must be "sync". --inflight N keeps N sends outstanding (default 1 = strictly sequential).
ali-ons does NOT auto-create topics: the topic must exist before (TOPIC_NOT_EXIST otherwise).
Output line: {"i","msg_id","offset_msg_id","queue_id","queue_offset","status"} (msg_id is the
broker's offset id, ali-ons has no client-side unique id). Errors are counted; summary on stderr.
Exit 0 when at least one send was acknowledged, 1 otherwise.`;

const { Producer, Message } = require('ali-ons');
const { parseArgs, makeBody, JsonLines, makeLogger } = require('./common');

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), {
      namesrv: '', topic: '', group: 'shardmq_test_producer_js', count: 100, start: 0,
      mode: 'sync', tag: 'TagA', keyPrefix: 'k-', prop: '', bodySize: 64, inflight: 1,
      out: '-', verbose: false,
    });
  } catch (e) {
    console.error(`error: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) { console.log(USAGE); return 0; }
  if (!args.namesrv || !args.topic) { console.error(`error: --namesrv and --topic are required\n\n${USAGE}`); return 2; }
  if (args.mode !== 'sync') { console.error(`error: mode ${args.mode} is not supported by ali-ons (only sync)`); return 2; }
  let prop = null;
  if (args.prop) {
    const at = args.prop.indexOf('=');
    if (at <= 0 || at === args.prop.length - 1) { console.error(`error: --prop wants NAME=VALUE, got ${args.prop}`); return 2; }
    prop = [ args.prop.slice(0, at), args.prop.slice(at + 1) ];
  }

  const out = new JsonLines(args.out);
  const producer = new Producer({
    nameSrv: args.namesrv, // always given: without it ali-ons looks the nameserver up on the web
    httpclient: {}, // required by the constructor, unused when nameSrv is set
    clientIP: '127.0.0.1',
    producerGroup: args.group,
    logger: makeLogger(args.verbose),
  });
  producer.on('error', e => { if (args.verbose) console.error('[producer error]', e.message); });
  await producer.ready();

  let acked = 0;
  let errors = 0;
  let firstError = null;
  const t0 = Date.now();
  let next = args.start;
  const end = args.start + args.count;
  async function worker() {
    while (next < end) {
      const i = next++;
      const msg = new Message(args.topic, args.tag, makeBody(args.keyPrefix, i, args.bodySize));
      msg.keys = [ `${args.keyPrefix}${i}` ];
      msg.properties.seq = String(i);
      if (prop) msg.properties[prop[0]] = prop[1];
      try {
        const r = await producer.send(msg);
        out.write({
          i, msg_id: r.msgId, offset_msg_id: r.msgId, queue_id: Number(r.messageQueue.queueId),
          queue_offset: r.queueOffset, status: r.sendStatus,
        });
        acked++;
      } catch (e) {
        errors++;
        if (!firstError) firstError = `${e.name} ${e.code === undefined ? '' : e.code} ${e.message}`;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, args.inflight) }, worker));
  const secs = (Date.now() - t0) / 1000;
  try { await producer.close(); } catch (e) { /* best effort */ }
  out.close();
  console.error(JSON.stringify({
    mode: args.mode, sent: args.count, acked, errors, seconds: secs,
    msgs_per_sec: secs ? Math.round(acked / secs * 10) / 10 : null, first_error: firstError,
  }));
  if (acked === 0) {
    console.error(`error: no message was acknowledged; is a nameserver at ${args.namesrv} with a broker running, and does topic ${args.topic} exist?`);
    return 1;
  }
  return 0;
}

main().then(code => process.exit(code), e => { console.error(`error: ${e.stack || e}`); process.exit(1); });
