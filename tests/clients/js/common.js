'use strict';
// Shared helpers for the ali-ons test programs: tiny argv parser, JSON-lines output, bodies.

const crypto = require('crypto');
const fs = require('fs');

function parseArgs(argv, spec) {
  // spec: { name: default } ; arrays collect repeated flags; booleans take no value.
  const out = {};
  for (const [k, v] of Object.entries(spec)) out[k] = Array.isArray(v) ? [] : v;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return { help: true };
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const name = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(name in spec)) throw new Error(`unknown option ${a}`);
    if (typeof spec[name] === 'boolean') { out[name] = true; continue; }
    const val = argv[++i];
    if (val === undefined) throw new Error(`option ${a} needs a value`);
    if (Array.isArray(spec[name])) out[name].push(val);
    else if (typeof spec[name] === 'number') {
      out[name] = Number(val);
      if (!Number.isFinite(out[name])) throw new Error(`option ${a} wants a number, got ${val}`);
    } else out[name] = val;
  }
  return out;
}

function makeBody(keyPrefix, i, size) {
  const head = Buffer.from(`${keyPrefix}${i}|`);
  if (head.length >= size) return head;
  return Buffer.concat([ head, Buffer.alloc(size - head.length, 'x') ]);
}

function bodyFields(body) {
  const out = { body_len: body.length, body_sha1: crypto.createHash('sha1').update(body).digest('hex') };
  if (body.length <= 256) out.body = body.toString('utf8');
  return out;
}

class JsonLines {
  constructor(path) {
    this.fd = path && path !== '-' ? fs.openSync(path, 'a') : 1;
  }
  write(obj) {
    // synchronous write: a kill -9 never loses a line that was reported as written
    fs.writeSync(this.fd, JSON.stringify(obj) + '\n');
  }
  close() {
    if (this.fd !== 1) fs.closeSync(this.fd);
  }
}

// ali-ons logs a lot at info level; keep warnings and errors on stderr only when asked.
function makeLogger(verbose) {
  const noop = () => {};
  return {
    debug: noop,
    info: verbose ? (...a) => console.error('[info]', ...a) : noop,
    warn: verbose ? (...a) => console.error('[warn]', ...a) : noop,
    error: (...a) => console.error('[error]', ...a.map(x => (x && x.message) || x)),
  };
}

module.exports = { parseArgs, makeBody, bodyFields, JsonLines, makeLogger };
