// The proper-lockfile peer, served over the lockspec worker protocol (spec/PROTOCOL.md).
//
// proper-lockfile is not an operating-system lock: lock(file) creates the directory FILE.lock
// (mkdir is atomic), refreshes its modification time while held, and treats a directory older
// than `stale` (10 s) as abandoned. It has no lock object: a protocol lock object is the path and
// the release function of its last acquire; a release without one calls unlock(file). By default
// it resolves the file with realpath, which requires the file to exist; the suite's lock files
// usually do not, so the adapter passes `realpath: false`, the documented option for that, and
// the lock is then named by the path as resolved against the working directory. It has no timed
// acquire (`retries` counts attempts): the adapter polls single attempts (`timeout_emulated`).
//
// Usage: node proper_lockfile.js NODE_MODULES_DIR
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { spawn } = require('child_process');

const modules = process.argv[2] || path.join(__dirname, 'node_modules');
const lockfile = require(path.join(modules, 'proper-lockfile'));
const { version } = require(path.join(modules, 'proper-lockfile', 'package.json'));

const POLL_MS = 5;
const EXIT_GRACE_MS = 1000;
const OPTIONS = { realpath: false };

const now = () => process.hrtime.bigint();

// Writes one message as one line; t_ns is written as an integer of any size.
function emit(message, tNs = now()) {
  const text = JSON.stringify(message);
  process.stdout.write(`${text.slice(0, -1)}${text.length > 2 ? ',' : ''}"t_ns":${tNs}}\n`);
}

function reply(seq, outcome, fields = {}) {
  const [kind, detail] = Array.isArray(outcome) ? outcome : [outcome, undefined];
  emit({ seq, outcome: kind, ...(detail ? { detail } : {}), ...fields });
}

const contended = (timeout) => (timeout === 0 ? 'would_block' : 'timed_out');
const ioError = (error) => ['io_error', String(error.message || error)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const handles = new Map();
const files = new Map();

// Milliseconds on the monotonic clock; Date.now() is wall time in whole milliseconds and can make
// an emulated timeout return up to 1 ms early.
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function acquire(h) {
  const deadline = h.timeout === null ? null : nowMs() + h.timeout;
  for (;;) {
    try {
      h.release = await lockfile.lock(h.path, OPTIONS);
      return 'acquired';
    } catch (error) {
      if (error.code !== 'ELOCKED') return ioError(error);
    }
    if (h.timeout === 0) return 'would_block';
    if (deadline !== null && nowMs() >= deadline) return contended(h.timeout);
    await sleep(deadline === null ? POLL_MS : Math.min(POLL_MS, Math.max(0, Math.ceil(deadline - nowMs()))));
  }
}

async function release(h) {
  try {
    await (h.release ? h.release() : lockfile.unlock(h.path, OPTIONS));
    return 'released';
  } catch (error) {
    // ERELEASED: this release function already ran; ENOTACQUIRED: no lock of this process.
    if (error.code === 'ERELEASED' || error.code === 'ENOTACQUIRED') return 'not_held';
    return ioError(error);
  }
}

function witness(file) {
  let created = true;
  try {
    fs.closeSync(fs.openSync(`${file}.sentinel`, 'wx'));
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
    created = false;
  }
  try {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8').trim();
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    const value = text ? Number(text) : 0;
    fs.writeFileSync(file, String(value + 1));
    return [value, !created];
  } finally {
    if (created) fs.unlinkSync(`${file}.sentinel`);
  }
}

async function execute(c) {
  const timed = async (call) => {
    const startNs = now();
    const outcome = await call();
    const [kind, detail] = Array.isArray(outcome) ? outcome : [outcome, undefined];
    emit({ seq: c.seq, outcome: kind, ...(detail ? { detail } : {}), start_ns: Number(startNs) });
  };
  switch (c.op) {
    case 'hello':
      return reply(c.seq, 'hello', {
        protocol: 2, implementation: 'proper-lockfile', version, language: 'node',
        capabilities: ['timeout_emulated'],
      });
    case 'open':
      if (c.callback) return reply(c.seq, ['unsupported', 'no contention callback']);
      handles.set(c.handle, { path: c.path, timeout: c.timeout_ms ?? null, release: null });
      return reply(c.seq, 'ok');
    case 'acquire':
      return timed(() => acquire(handles.get(c.handle)));
    case 'release':
      return timed(() => release(handles.get(c.handle)));
    case 'close':
      handles.delete(c.handle);
      return reply(c.seq, 'ok');
    case 'file_open':
      try {
        files.set(c.file, fs.openSync(c.path, 'r'));
      } catch (error) {
        return reply(c.seq, ioError(error));
      }
      return reply(c.seq, 'ok');
    case 'file_close':
      fs.closeSync(files.get(c.file));
      files.delete(c.file);
      return reply(c.seq, 'ok');
    case 'spawn_child': {
      const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
      return reply(c.seq, 'ok', { pid: child.pid });
    }
    case 'sleep':
      return timed(() => new Promise((resolve) => setTimeout(() => resolve('ok'), c.ms)));
    case 'witness': {
      const startNs = now();
      const [value, collision] = witness(c.path);
      return reply(c.seq, 'ok', { value, collision, start_ns: Number(startNs) });
    }
    default:
      throw new Error(`unknown op ${JSON.stringify(c.op)}`);
  }
}

// Each protocol thread is a lane: its commands run in order, lanes run concurrently on the event
// loop (Node shares lock state only within one thread, so the lanes are not OS threads).
const lanes = new Map();
let pending = 0;

function crash(error) {
  process.stderr.write(`lockspec adapter: ${error && error.stack ? error.stack : error}\n`);
  process.exit(101);
}

let number = 0;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  number += 1;
  let command;
  try {
    command = JSON.parse(line);
    if (typeof command.seq !== 'number' || typeof command.op !== 'string') throw new Error('no seq or op');
  } catch (error) {
    process.stderr.write(`lockspec adapter: line ${number} is not a command (${error.message}): ${line}\n`);
    process.exit(2);
  }
  const name = command.thread || 'main';
  pending += 1;
  const next = (lanes.get(name) || Promise.resolve()).then(() => execute(command)).catch(crash);
  lanes.set(name, next.then(() => { pending -= 1; }));
}).on('close', () => {
  const deadline = Date.now() + EXIT_GRACE_MS;
  const wait = () => (pending === 0 || Date.now() >= deadline ? process.exit(0) : setTimeout(wait, 1));
  wait();
});
