"""Helpers shared by the Python client programs (argument parsing, output, message bodies).

Works with both `rocketmq-client-python==0.5.0rc2` and `rocketmq==0.4.4` (both install a
package named `rocketmq`; each lives in its own virtualenv).
"""
import hashlib
import json
import sys
import threading


def make_body(key_prefix, i, size):
    """Deterministic body: '<prefix><i>|' then 'x' up to `size` bytes (never shorter than the head)."""
    head = ('%s%d|' % (key_prefix, i)).encode()
    if len(head) >= size:
        return head
    return head + b'x' * (size - len(head))


def parse_prop(text):
    if text is None:
        return None
    if '=' not in text:
        raise SystemExit('error: --prop wants NAME=VALUE, got %r' % text)
    name, value = text.split('=', 1)
    if not name or not value:
        raise SystemExit('error: --prop wants non-empty NAME=VALUE, got %r' % text)
    return name, value


def as_text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def body_fields(body):
    out = {'body_len': len(body), 'body_sha1': hashlib.sha1(body).hexdigest()}
    if len(body) <= 256:
        out['body'] = body.decode('utf-8', 'replace')
    return out


class JsonLines:
    """Thread-safe JSON-lines writer; flushes every line so a kill -9 loses nothing written."""

    def __init__(self, path):
        self._lock = threading.Lock()
        self._file = open(path, 'a', buffering=1) if path and path != '-' else sys.stdout

    def write(self, obj):
        line = json.dumps(obj, separators=(',', ':'))
        with self._lock:
            self._file.write(line + '\n')
            self._file.flush()

    def close(self):
        if self._file is not sys.stdout:
            self._file.close()


def log(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()
