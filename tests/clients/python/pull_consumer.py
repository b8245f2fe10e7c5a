#!/usr/bin/env python3
"""Read a whole topic with the PullConsumer of `rocketmq==0.4.4` (its own virtualenv).

    pull_consumer.py --namesrv 127.0.0.1:9876 --topic T --group PullG [--expr '*'] \
        [--expect N] [--max-seconds S] [--prop userProp] [--out FILE]

The 0.4.4 PullConsumer keeps offsets in the client (starting at 0 for every queue) and pulls each
queue until the broker says NO_NEW_MSG (PULL_MESSAGE with sysFlag SUBSCRIPTION, no suspend).
Passes are repeated until --expect distinct messages were seen or --max-seconds passed.
Output lines as consumer.py. Exit 1 if --expect was given and not reached.
"""
import argparse
import json
import time

from common import JsonLines, as_text, body_fields, log

from rocketmq.client import PullConsumer


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--namesrv', required=True)
    ap.add_argument('--topic', required=True)
    ap.add_argument('--group', default='shardmq_test_pull')
    ap.add_argument('--expr', default='*')
    ap.add_argument('--expect', type=int)
    ap.add_argument('--max-seconds', type=float, default=120.0)
    ap.add_argument('--prop', action='append', default=[])
    ap.add_argument('--out', default='-')
    args = ap.parse_args()

    out = JsonLines(args.out)
    names = ['seq'] + [p for p in args.prop if p != 'seq']
    consumer = PullConsumer(args.group)
    consumer.set_namesrv_addr(args.namesrv)
    consumer.start()
    seen, received = set(), 0
    t0 = time.time()
    try:
        while time.time() - t0 < args.max_seconds:
            for msg in consumer.pull(args.topic, args.expr):
                props = {}
                for name in names:
                    value = as_text(msg.get_property(name))
                    if value:
                        props[name] = value
                body = msg.body or b''
                line = {'topic': msg.topic, 'tags': as_text(msg.tags), 'keys': as_text(msg.keys)}
                line.update(body_fields(body))
                line.update({'props': props, 'queue_id': msg.queue_id,
                             'queue_offset': msg.queue_offset, 'msg_id': msg.id,
                             'reconsume_times': msg.reconsume_times})
                out.write(line)
                received += 1
                seen.add(line['msg_id'])
            if args.expect is None or len(seen) >= args.expect:
                break
            time.sleep(0.5)
    finally:
        consumer.shutdown()
        out.close()
    log(json.dumps({'received': received, 'distinct': len(seen),
                    'seconds': round(time.time() - t0, 3)}))
    if args.expect is not None and len(seen) < args.expect:
        log('error: expected %d distinct messages, got %d' % (args.expect, len(seen)))
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
