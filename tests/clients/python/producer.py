#!/usr/bin/env python3
"""Send COUNT messages with a real RocketMQ client and print one JSON line per acknowledged send.

    producer.py --namesrv 127.0.0.1:9876 --topic T --group PG --count 10000 \
        [--mode sync|oneway|async|batch] [--tag TagA] [--key-prefix k-] [--prop userProp=v1] \
        [--body-size 64] [--start 0] [--batch-size 16] [--inflight 64] [--out FILE]

Each message i (START <= i < START+COUNT) has keys '<key-prefix><i>', the tag, user property
`seq=<i>` plus the --prop one, and the body from common.make_body. Output line per ACKED message:
{"i":N,"msg_id":..,"offset_msg_id":..,"queue_id":..,"queue_offset":..,"status":..}
(`offset_msg_id`/`queue_id` are null: the C++ library does not return them. For batches the
library returns no id, so `msg_id` is null and `queue_offset` is first offset + position.)
oneway sends are never acknowledged: one line per send with status "ONEWAY".
Send errors are counted and the loop goes on. A summary JSON goes to stderr at the end.
Exit 0 when at least one send was acknowledged (or all oneway sends were issued), 1 otherwise.

Modes: sync and oneway with either library; async and batch need `rocketmq==0.4.4`
(rocketmq-client-python 0.5.0rc2 has neither in its Python API).
"""
import argparse
import json
import threading
import time

from common import JsonLines, log, make_body, parse_prop

from rocketmq.client import Message, Producer


def build_message(args, prop, i):
    msg = Message(args.topic)
    msg.set_keys(args.key_prefix + str(i))
    if args.tag:
        msg.set_tags(args.tag)
    msg.set_property('seq', str(i))
    if prop:
        msg.set_property(prop[0], prop[1])
    msg.set_body(make_body(args.key_prefix, i, args.body_size))
    return msg


def ack_line(i, res, offset_delta=0):
    msg_id = res.msg_id or None
    return {'i': i, 'msg_id': msg_id, 'offset_msg_id': None, 'queue_id': None,
            'queue_offset': res.offset + offset_delta,
            'status': 'SEND_OK' if res.status.name == 'OK' else res.status.name}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--namesrv', required=True)
    ap.add_argument('--topic', required=True)
    ap.add_argument('--group', default='shardmq_test_producer')
    ap.add_argument('--count', type=int, default=100)
    ap.add_argument('--start', type=int, default=0)
    ap.add_argument('--mode', choices=['sync', 'oneway', 'async', 'batch'], default='sync')
    ap.add_argument('--tag', default='TagA')
    ap.add_argument('--key-prefix', default='k-')
    ap.add_argument('--prop', help='user property NAME=VALUE')
    ap.add_argument('--body-size', type=int, default=64)
    ap.add_argument('--batch-size', type=int, default=16)
    ap.add_argument('--inflight', type=int, default=64, help='async: max sends in flight')
    ap.add_argument('--timeout-ms', type=int, default=3000, help='send timeout')
    ap.add_argument('--retry-failed', type=int, default=0,
                    help='async: resend each failed message with send_sync, up to N times')
    ap.add_argument('--out', default='-')
    args = ap.parse_args()
    prop = parse_prop(args.prop)

    if args.mode in ('async', 'batch') and not hasattr(Producer, 'send_' + args.mode):
        raise SystemExit('error: mode %s is not supported by this rocketmq library '
                         '(use the rocketmq==0.4.4 virtualenv)' % args.mode)

    out = JsonLines(args.out)
    producer = Producer(args.group, timeout=args.timeout_ms)
    producer.set_namesrv_addr(args.namesrv)
    producer.start()
    acked = errors = retried = 0
    first_error = None
    failed = []
    lock = threading.Lock()
    t0 = time.time()
    end = args.start + args.count
    try:
        if args.mode == 'sync':
            for i in range(args.start, end):
                try:
                    res = producer.send_sync(build_message(args, prop, i))
                    out.write(ack_line(i, res))
                    acked += 1
                except Exception as exc:  # noqa: BLE001 - count every failure and go on
                    errors += 1
                    first_error = first_error or str(exc)
        elif args.mode == 'oneway':
            for i in range(args.start, end):
                try:
                    producer.send_oneway(build_message(args, prop, i))
                    out.write({'i': i, 'msg_id': None, 'offset_msg_id': None, 'queue_id': None,
                               'queue_offset': None, 'status': 'ONEWAY'})
                    acked += 1
                except Exception as exc:  # noqa: BLE001
                    errors += 1
                    first_error = first_error or str(exc)
        elif args.mode == 'batch':
            for b0 in range(args.start, end, args.batch_size):
                idx = list(range(b0, min(end, b0 + args.batch_size)))
                try:
                    res = producer.send_batch([build_message(args, prop, i) for i in idx])
                    for j, i in enumerate(idx):
                        out.write(ack_line(i, res, j))
                    acked += len(idx)
                except Exception as exc:  # noqa: BLE001
                    errors += len(idx)
                    first_error = first_error or str(exc)
        else:  # async
            slots = threading.BoundedSemaphore(args.inflight)
            pending = {'n': 0}
            done = threading.Condition(lock)

            def finish():
                with done:
                    pending['n'] -= 1
                    done.notify_all()
                slots.release()

            for i in range(args.start, end):
                slots.acquire()
                with lock:
                    pending['n'] += 1

                def on_ok(res, i=i):
                    nonlocal acked
                    out.write(ack_line(i, res))
                    with lock:
                        acked += 1
                    finish()

                def on_err(exc, i=i):
                    nonlocal errors, first_error
                    with lock:
                        errors += 1
                        first_error = first_error or str(exc)
                        failed.append(i)
                    finish()

                try:
                    producer.send_async(build_message(args, prop, i), on_ok, on_err)
                except Exception as exc:  # noqa: BLE001
                    on_err(exc)
            with done:
                done.wait_for(lambda: pending['n'] == 0, timeout=60)
            # The C++ client fails some of its first async sends itself (a client-side lock
            # timeout while it connects): a producer that wants them all sends those again.
            with lock:
                again = sorted(failed) if args.retry_failed else []
            for i in again:
                for _ in range(args.retry_failed):
                    try:
                        res = producer.send_sync(build_message(args, prop, i))
                    except Exception as exc:  # noqa: BLE001 - try again, then count it
                        first_error = first_error or str(exc)
                        continue
                    out.write(ack_line(i, res))
                    acked += 1
                    errors -= 1
                    retried += 1
                    break
    finally:
        producer.shutdown()
        out.close()
    secs = time.time() - t0
    log(json.dumps({'mode': args.mode, 'sent': args.count, 'acked': acked, 'errors': errors,
                    'retried': retried,
                    'seconds': round(secs, 3), 'msgs_per_sec': round(acked / secs, 1) if secs else None,
                    'first_error': first_error}))
    if acked == 0:
        log('error: no message was acknowledged; is a nameserver at %s with a broker running?'
            % args.namesrv)
        return 1
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
