#!/usr/bin/env python3
"""Push-consume a topic with a real RocketMQ client; one JSON line per received message.

    consumer.py --namesrv 127.0.0.1:9876 --topic T --group CG [--expr '*'|'TagA || TagB'] \
        [--expect N] [--idle-timeout S] [--stop-after K] [--max-seconds S] [--prop userProp] \
        [--out FILE]

CLUSTERING model. The C++ library always starts a NEW group at CONSUME_FROM_LAST_OFFSET (the
Python API cannot change it): it asks QUERY_CONSUMER_OFFSET and only falls back to the queue's
max offset when the broker answers "not found", so a broker behaving like upstream (offset 0 for
a fresh group on a young queue) delivers everything from the start.

Output line: {"topic","tags","keys","body_len","body_sha1","body"(<=256 bytes),"props":{..},
"queue_id","queue_offset","msg_id","reconsume_times"}; props holds `seq` and every --prop name.
Stops (then shuts down cleanly, which persists the consumed offsets to the broker) when:
  --expect N distinct msg_ids were seen (exit 0), or --stop-after K messages were received
  (exit 0), or nothing new arrived for --idle-timeout seconds (exit 0 without --expect,
  1 if --expect was not reached), or --max-seconds passed (same rule).
Every message handed to the callback is written before it is acknowledged.
Summary JSON on stderr.
"""
import argparse
import json
import threading
import time

from common import JsonLines, as_text, body_fields, log

from rocketmq.client import ConsumeStatus, PushConsumer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--namesrv', required=True)
    ap.add_argument('--topic', required=True)
    ap.add_argument('--group', default='shardmq_test_consumer')
    ap.add_argument('--expr', default='*')
    ap.add_argument('--expect', type=int)
    ap.add_argument('--stop-after', type=int)
    ap.add_argument('--idle-timeout', type=float, default=30.0)
    ap.add_argument('--max-seconds', type=float, default=600.0)
    ap.add_argument('--prop', action='append', default=[], help='user property name to report')
    ap.add_argument('--threads', type=int, default=0, help='consume threads (0 = library default)')
    ap.add_argument('--out', default='-')
    args = ap.parse_args()

    out = JsonLines(args.out)
    names = ['seq'] + [p for p in args.prop if p != 'seq']
    lock = threading.Lock()
    state = {'received': 0, 'seen': set(), 'last_new': time.time(), 'dups': 0}

    def on_message(msg):
        props = {}
        for name in names:
            value = as_text(msg.get_property(name))
            if value:
                props[name] = value
        body = msg.body or b''
        line = {'topic': msg.topic, 'tags': as_text(msg.tags), 'keys': as_text(msg.keys)}
        line.update(body_fields(body))
        line.update({'props': props, 'queue_id': msg.queue_id, 'queue_offset': msg.queue_offset,
                     'msg_id': msg.id, 'reconsume_times': msg.reconsume_times})
        out.write(line)
        with lock:
            state['received'] += 1
            if line['msg_id'] in state['seen']:
                state['dups'] += 1
            else:
                state['seen'].add(line['msg_id'])
                state['last_new'] = time.time()
        return ConsumeStatus.CONSUME_SUCCESS

    consumer = PushConsumer(args.group)
    consumer.set_namesrv_addr(args.namesrv)
    if args.threads:
        consumer.set_thread_count(args.threads)
    consumer.subscribe(args.topic, on_message, args.expr)
    consumer.start()
    t0 = time.time()
    reason = None
    while reason is None:
        time.sleep(0.1)
        with lock:
            distinct, received, last_new = len(state['seen']), state['received'], state['last_new']
        now = time.time()
        if args.expect is not None and distinct >= args.expect:
            reason = 'expect'
        elif args.stop_after is not None and received >= args.stop_after:
            reason = 'stop-after'
        elif now - last_new >= args.idle_timeout:
            reason = 'idle-timeout'
        elif now - t0 >= args.max_seconds:
            reason = 'max-seconds'
    consumer.shutdown()  # persists offsets (UPDATE_CONSUMER_OFFSET) before returning
    out.close()
    with lock:
        summary = {'reason': reason, 'received': state['received'], 'distinct': len(state['seen']),
                   'duplicates': state['dups'], 'seconds': round(time.time() - t0, 3)}
    log(json.dumps(summary))
    if args.expect is not None and summary['distinct'] < args.expect:
        log('error: expected %d distinct messages, got %d (%s)'
            % (args.expect, summary['distinct'], reason))
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
