#!/usr/bin/env python3
"""A tiny in-memory stand-in for a RocketMQ nameserver + broker, for exploring clients.

It is NOT shardmq and not used by the test suite. It exists to (1) record, frame by frame, what
real client libraries send (`--log frames.jsonl`) and (2) check the client programs in this
folder without a real broker. It answers the handful of requests a producer / push consumer /
pull consumer needs, keeps messages in memory and speaks only the JSON header codec.

    python3 mockmq.py --namesrv-port 19876 --broker-port 20911 --log /tmp/frames.jsonl

Options: --quoted-keys (route JSON with "0" instead of fastjson's bare 0), --no-auto-create
(answer TOPIC_NOT_EXIST for unknown topics on send too), --offset-not-found (answer
QUERY_CONSUMER_OFFSET for a group without a stored offset with code 22 instead of offset 0).
"""
import argparse
import asyncio
import json
import struct
import sys
import time
import zlib

MAGIC_V1 = -626843481


def java_hash(s):
    h = 0
    for ch in s:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def parse_props(s):
    out = {}
    for item in s.split('\x02'):
        if '\x01' in item:
            k, v = item.split('\x01', 1)
            if k and v:
                out[k] = v
    return out


class Mock:
    def __init__(self, args):
        self.args = args
        self.addr = '127.0.0.1:%d' % args.broker_port
        self.topics = {'TBW102': 8}
        self.queues = {}  # (topic, qid) -> list of (record bytes, tags)
        self.phys = 0
        self.offsets = {}
        self.consumers = {}  # group -> {clientID: writer}
        self.waiters = set()
        self.log = open(args.log, 'a', buffering=1) if args.log else None
        self.t0 = time.time()

    def record(self, port, sender, hdr, body, header_text):
        if not self.log:
            return
        ent = {'t_ms': round((time.time() - self.t0) * 1000, 1), 'port': port, 'sender': sender,
               'code': hdr.get('code'), 'flag': hdr.get('flag'), 'opaque': hdr.get('opaque'),
               'header_text': header_text, 'body_len': len(body)}
        try:
            txt = body.decode('utf-8')
            if all(c >= ' ' or c in '\t\r\n' for c in txt):
                ent['body_text'] = txt[:4000]
            else:
                ent['body_hex'] = body[:256].hex()
        except UnicodeDecodeError:
            ent['body_hex'] = body[:256].hex()
        self.log.write(json.dumps(ent) + '\n')

    @staticmethod
    def frame(code, opaque, flag, ext=None, remark=None, body=b'', version=275):
        hdr = {'code': code, 'flag': flag, 'language': 'JAVA', 'opaque': opaque,
               'serializeTypeCurrentRPC': 'JSON', 'version': version}
        if ext is not None:
            hdr['extFields'] = {k: str(v) for k, v in ext.items()}
        if remark is not None:
            hdr['remark'] = remark
        h = json.dumps(hdr, separators=(',', ':')).encode()
        return struct.pack('>ii', 4 + len(h) + len(body), len(h)) + h + body, hdr, h.decode()

    def route_body(self, topic):
        qn = self.topics[topic]
        key = '"0"' if self.args.quoted_keys else '0'
        return ('{"brokerDatas":[{"brokerAddrs":{%s:"%s"},"brokerName":"broker-a","cluster":'
                '"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a",'
                '"perm":6,"readQueueNums":%d,"topicSynFlag":0,"writeQueueNums":%d}]}'
                % (key, self.addr, qn, qn)).encode()

    def store(self, topic, qid, body, flag, props, sysflag, born_ts, reconsume, peer):
        q = self.queues.setdefault((topic, qid), [])
        qoff = len(q)
        tb = topic.encode()
        pb = props.encode()
        bh = bytes(int(x) for x in peer[0].split('.')) if peer else b'\x7f\0\0\1'
        bport = peer[1] if peer else 0
        sh = b'\x7f\0\0\1'
        size = 91 + len(body) + len(tb) + len(pb)
        rec = struct.pack('>iiiiiqqiq4siq4siiqi', size, MAGIC_V1, zlib.crc32(body) & 0x7FFFFFFF, qid,
                          flag, qoff, self.phys, sysflag, born_ts, bh, bport,
                          int(time.time() * 1000), sh, self.args.broker_port, reconsume, 0,
                          len(body)) + body + struct.pack('>b', len(tb)) + tb + \
            struct.pack('>h', len(pb)) + pb
        msgid = '7F000001%08X%016X' % (self.args.broker_port, self.phys)
        self.phys += size
        q.append((rec, parse_props(props).get('TAGS')))
        for w in list(self.waiters):
            w.set()
        return msgid, qoff

    def ensure_topic(self, topic, nums):
        if topic not in self.topics:
            if self.args.no_auto_create and not topic.startswith('%RETRY%'):
                return False
            self.topics[topic] = max(1, min(int(nums), 8))
        return True

    async def handle(self, port, hdr, body, writer):
        code = hdr.get('code')
        op = hdr.get('opaque')
        ext = {k: str(v) for k, v in (hdr.get('extFields') or {}).items()}
        peer = writer.get_extra_info('peername')
        if code == 105:
            t = ext.get('topic', '')
            if t in self.topics:
                return 0, None, None, self.route_body(t)
            return 17, None, ('No topic route info in name server for the topic: %s\nSee '
                              'http://rocketmq.apache.org/docs/faq/ for further details.' % t), b''
        if code in (10, 310, 320):
            if code == 10:
                g = ext
            else:
                m = dict(zip('abcdefghijklm', ['producerGroup', 'topic', 'defaultTopic',
                                               'defaultTopicQueueNums', 'queueId', 'sysFlag',
                                               'bornTimestamp', 'flag', 'properties',
                                               'reconsumeTimes', 'unitMode',
                                               'maxReconsumeTimes', 'batch']))
                g = {m.get(k, k): v for k, v in ext.items()}
            topic = g['topic']
            if not self.ensure_topic(topic, g.get('defaultTopicQueueNums', 4)):
                return 17, None, 'topic[%s] not exist, apply first please!' % topic, b''
            qid = int(g.get('queueId', 0))
            if qid < 0:
                qid = 0
            if qid >= self.topics[topic]:
                return 1, None, 'queueId[%d] is illegal' % qid, b''
            common = (int(g.get('sysFlag', 0)), int(g.get('bornTimestamp', 0)),
                      int(g.get('reconsumeTimes', 0) or 0), peer)
            if code == 320 or str(g.get('batch', '')).lower() in ('1', 'true'):
                ids, first, pos = [], None, 0
                batch_props = g.get('properties', '')
                while pos < len(body):
                    tot, _, _, flag, blen = struct.unpack_from('>iiiii', body, pos)
                    b = body[pos + 20:pos + 20 + blen]
                    plen = struct.unpack_from('>h', body, pos + 20 + blen)[0]
                    p = body[pos + 22 + blen:pos + 22 + blen + plen].decode()
                    if p and batch_props and not p.endswith('\x02'):
                        p += '\x02'
                    mid, qo = self.store(topic, qid, b, flag, p + batch_props, *common)
                    ids.append(mid)
                    first = qo if first is None else first
                    pos += tot
                msgid, qoff = ','.join(ids), first
            else:
                msgid, qoff = self.store(topic, qid, body, int(g.get('flag', 0)),
                                         g.get('properties', ''), *common)
            return 0, {'msgId': msgid, 'queueId': qid, 'queueOffset': qoff,
                       'MSG_REGION': 'DefaultRegion', 'TRACE_ON': 'true'}, None, b''
        if code == 34:
            hb = json.loads(body.decode())
            for cd in hb.get('consumerDataSet', []):
                grp = cd['groupName']
                self.consumers.setdefault(grp, {})[hb['clientID']] = writer
                self.topics.setdefault('%RETRY%' + grp, 1)
            return 0, None, None, b''
        if code == 35:
            grp = ext.get('consumerGroup')
            if grp and grp in self.consumers:
                self.consumers[grp].pop(ext.get('clientID'), None)
            return 0, {}, None, b''
        if code == 38:
            ids = sorted(self.consumers.get(ext.get('consumerGroup'), {}))
            if not ids:
                return 1, None, 'no consumer for this group, %s' % ext.get('consumerGroup'), b''
            return 0, {}, None, json.dumps({'consumerIdList': ids}).encode()
        if code == 14:
            k = (ext['consumerGroup'], ext['topic'], int(ext['queueId']))
            if k in self.offsets:
                return 0, {'offset': self.offsets[k]}, None, b''
            if self.args.offset_not_found:
                return 22, None, 'Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first', b''
            return 0, {'offset': 0}, None, b''
        if code == 15:
            k = (ext['consumerGroup'], ext['topic'], int(ext['queueId']))
            self.offsets[k] = int(ext['commitOffset'])
            return 0, {}, None, b''
        if code in (30, 31):
            n = len(self.queues.get((ext['topic'], int(ext['queueId'])), []))
            return 0, {'offset': n if code == 30 else 0}, None, b''
        if code == 29:
            return 0, {'offset': 0}, None, b''
        if code == 11:
            return await self.pull(ext)
        if code == 17:
            self.topics[ext['topic']] = max(1, int(ext.get('writeQueueNums', 4)))
            return 0, None, None, b''
        if code == 36:
            return 0, {}, None, b''
        return 3, None, ' request type %s not supported' % code, b''

    async def pull(self, ext):
        topic, qid = ext['topic'], int(ext['queueId'])
        off, maxn = int(ext['queueOffset']), int(ext['maxMsgNums'])
        sub = ext.get('subscription') or '*'
        tags = None if sub.strip() in ('*', '') else {t.strip() for t in sub.split('||')}
        if int(ext.get('sysFlag', 0)) & 1:
            self.offsets[(ext['consumerGroup'], topic, qid)] = int(ext.get('commitOffset', 0))
        deadline = time.time() + min(int(ext.get('suspendTimeoutMillis', 0)), 2000) / 1000.0
        while True:
            q = self.queues.get((topic, qid), [])
            if off < len(q):
                recs = []
                nxt = off
                for rec, tag in q[off:off + maxn]:
                    nxt += 1
                    if tags is None or tag in tags:
                        recs.append(rec)
                ext2 = {'nextBeginOffset': nxt, 'minOffset': 0, 'maxOffset': len(q),
                        'suggestWhichBrokerId': 0}
                if recs:
                    return 0, ext2, 'FOUND', b''.join(recs)
                return 20, ext2, 'NO_MATCHED_MESSAGE', b''
            if off > len(q):
                return 21, {'nextBeginOffset': len(q), 'minOffset': 0, 'maxOffset': len(q),
                            'suggestWhichBrokerId': 0}, 'OFFSET_OVERFLOW_BADLY', b''
            left = deadline - time.time()
            if left <= 0:
                return 19, {'nextBeginOffset': off, 'minOffset': 0, 'maxOffset': len(q),
                            'suggestWhichBrokerId': 0}, 'OFFSET_OVERFLOW_ONE', b''
            ev = asyncio.Event()
            self.waiters.add(ev)
            try:
                await asyncio.wait_for(ev.wait(), left)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiters.discard(ev)

    async def serve_one(self, port, hdr, body, writer):
        code, ext, remark, rbody = await self.handle(port, hdr, body, writer)
        if hdr.get('flag', 0) & 2:
            return
        data, rh, text = self.frame(code, hdr.get('opaque'), 1, ext, remark, rbody)
        self.record(port, 'server', rh, rbody, text)
        writer.write(data)
        await writer.drain()

    async def conn(self, port, reader, writer):
        try:
            while True:
                head = await reader.readexactly(8)
                total, hw = struct.unpack('>ii', head)
                rest = await reader.readexactly(total - 4)
                hlen = hw & 0xFFFFFF
                htext = rest[:hlen].decode('utf-8')
                hdr = json.loads(htext)
                body = rest[hlen:]
                self.record(port, 'client', hdr, body, htext)
                if hdr.get('flag', 0) & 1:
                    continue
                asyncio.ensure_future(self.serve_one(port, hdr, body, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--namesrv-port', type=int, default=19876)
    ap.add_argument('--broker-port', type=int, default=20911)
    ap.add_argument('--log')
    ap.add_argument('--quoted-keys', action='store_true')
    ap.add_argument('--no-auto-create', action='store_true')
    ap.add_argument('--offset-not-found', action='store_true',
                    help='answer QUERY_CONSUMER_OFFSET for unknown groups with QUERY_NOT_FOUND (22)')
    args = ap.parse_args()
    m = Mock(args)
    servers = []
    for port, label in ((args.namesrv_port, 'namesrv'), (args.broker_port, 'broker'),
                        (args.broker_port - 2, 'broker-vip')):
        servers.append(await asyncio.start_server(
            lambda r, w, lb=label: m.conn(lb, r, w), '127.0.0.1', port))
    print('mockmq listening: namesrv %d broker %d vip %d' % (
        args.namesrv_port, args.broker_port, args.broker_port - 2), file=sys.stderr, flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
