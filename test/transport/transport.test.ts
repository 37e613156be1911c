import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { type Message, MessageType } from '../../src/raft/types.js';
import { encodeFrame, FrameDecoder, FrameTooLargeError } from '../../src/transport/frame.js';
import {
  PeerTransport,
  type PeerTransportOptions,
  PROTOCOL_VERSION,
} from '../../src/transport/peer-transport.js';

function until(cond: () => boolean, timeoutMs = 3000): Promise<void> {
  const began = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (cond()) return resolve();
      if (Date.now() - began > timeoutMs) return reject(new Error('condition not met in time'));
      setTimeout(check, 5);
    };
    check();
  });
}

async function pair(
  overrides: Partial<PeerTransportOptions> = {},
  overridesA: Partial<PeerTransportOptions> = {},
) {
  const gotA: Message[] = [];
  const gotB: Message[] = [];
  const a = new PeerTransport({
    nodeId: 'a',
    clusterId: 'c1',
    host: '127.0.0.1',
    port: 0,
    onRaftMessage: (m) => gotA.push(m),
    ...overridesA,
  });
  const b = new PeerTransport({
    nodeId: 'b',
    clusterId: 'c1',
    host: '127.0.0.1',
    port: 0,
    onRaftMessage: (m) => gotB.push(m),
    onRequest: async (from, body) => ({ from, echo: body }),
    ...overrides,
  });
  const portA = await a.listen();
  const portB = await b.listen();
  a.setPeer('b', `127.0.0.1:${portB}`);
  b.setPeer('a', `127.0.0.1:${portA}`);
  return { a, b, gotA, gotB, portA, portB };
}

const heartbeat = (from: string, to: string, term: number): Message => ({
  type: MessageType.Heartbeat,
  from,
  to,
  term,
  commit: 0,
});

test('frames survive arbitrary chunking', () => {
  const frames = [
    encodeFrame({ x: 1 }, 1024),
    encodeFrame({ y: new Uint8Array([1, 2, 3]) }, 1024),
    encodeFrame('z', 1024),
  ];
  const all = Buffer.concat(frames);
  for (let cut = 1; cut < all.length; cut++) {
    const d = new FrameDecoder(1024);
    const out = [...d.push(all.subarray(0, cut)), ...d.push(all.subarray(cut))];
    assert.equal(out.length, 3);
    assert.deepEqual(out[0], { x: 1 });
    assert.deepEqual([...(out[1] as { y: Uint8Array }).y], [1, 2, 3]);
  }
});

test('an oversized frame header is refused before buffering it', () => {
  const d = new FrameDecoder(16);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1 << 30, 0);
  assert.throws(() => d.push(header), FrameTooLargeError);
});

test('raft messages flow both ways, in order, over reused connections', async () => {
  const { a, b, gotA, gotB } = await pair();
  try {
    for (let i = 1; i <= 200; i++) a.send(heartbeat('a', 'b', i));
    b.send(heartbeat('b', 'a', 7));
    await until(() => gotB.length === 200 && gotA.length === 1);
    assert.deepEqual(
      gotB.map((m) => m.term),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.equal(gotA[0]!.term, 7);
  } finally {
    await a.close();
    await b.close();
  }
});

test("flush puts the turn's writes on the wire at once; writes after it in the same turn still arrive, in order", async () => {
  const { a, b, gotB } = await pair();
  try {
    a.send(heartbeat('a', 'b', 1));
    await until(() => gotB.length === 1);
    // One turn: batches cut by flush, as the Raft host does after each batch of messages.
    for (let i = 2; i <= 30; i++) {
      a.send(heartbeat('a', 'b', i));
      if (i % 7 === 0) a.flush();
    }
    a.flush();
    a.send(heartbeat('a', 'b', 31));
    await until(() => gotB.length === 31);
    assert.deepEqual(
      gotB.map((m) => m.term),
      Array.from({ length: 31 }, (_, i) => i + 1),
    );
  } finally {
    await a.close();
    await b.close();
  }
});

test('requests are answered on the same connection', async () => {
  const { a, b } = await pair();
  try {
    const res = await a.request('b', { op: 'ping' }, 2000);
    assert.deepEqual(res, { from: 'a', echo: { op: 'ping' } });
  } finally {
    await a.close();
    await b.close();
  }
});

test('a peer of another cluster is refused and cannot deliver raft messages', async () => {
  const gotB: Message[] = [];
  const b = new PeerTransport({
    nodeId: 'b',
    clusterId: 'c1',
    host: '127.0.0.1',
    port: 0,
    onRaftMessage: (m) => gotB.push(m),
  });
  const stranger = new PeerTransport({
    nodeId: 'x',
    clusterId: 'other',
    host: '127.0.0.1',
    port: 0,
    onRaftMessage: () => {},
  });
  const portB = await b.listen();
  stranger.setPeer('b', `127.0.0.1:${portB}`);
  try {
    stranger.send(heartbeat('x', 'b', 1));
    await until(() => b.stats.rejectedHandshakes >= 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(gotB.length, 0);
  } finally {
    await stranger.close();
    await b.close();
  }
});

test('garbage on the peer port closes that connection and nothing else', async () => {
  const { a, b, gotB, portB } = await pair();
  try {
    const sock = connect(portB, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const closed = new Promise((r) => sock.once('close', r));
    sock.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    await closed;
    a.send(heartbeat('a', 'b', 3));
    await until(() => gotB.length === 1);
  } finally {
    await a.close();
    await b.close();
  }
});

test('reconnects after the peer restarts on the same port', async () => {
  const { a, b, gotB, portB } = await pair();
  try {
    a.send(heartbeat('a', 'b', 1));
    await until(() => gotB.length === 1);
    await b.close();
    const got2: Message[] = [];
    const b2 = new PeerTransport({
      nodeId: 'b',
      clusterId: 'c1',
      host: '127.0.0.1',
      port: portB,
      onRaftMessage: (m) => got2.push(m),
    });
    await b2.listen();
    try {
      // Messages sent while the link is down may be dropped (Raft retransmits); keep sending.
      await until(() => {
        a.send(heartbeat('a', 'b', 2));
        return got2.length > 0;
      }, 5000);
    } finally {
      await b2.close();
    }
  } finally {
    await a.close();
  }
});

test('a message larger than one frame travels as several and arrives whole, however the bytes are cut', () => {
  const data = new Uint8Array(10_000).map((_, i) => i % 251);
  const bytes = Buffer.concat([
    encodeFrame({ a: 1 }, 1024),
    encodeFrame({ big: data }, 1024),
    encodeFrame('z', 1024),
  ]);
  assert.ok(bytes.length > 10_000 + 4 * 10, 'split into frames of at most 1024 bytes');
  for (const step of [1, 7, 1000, 1028, bytes.length]) {
    const d = new FrameDecoder(1024);
    const out: unknown[] = [];
    for (let at = 0; at < bytes.length; at += step) out.push(...d.push(bytes.subarray(at, at + step)));
    assert.equal(out.length, 3);
    assert.deepEqual(out[0], { a: 1 });
    assert.deepEqual([...(out[1] as { big: Uint8Array }).big], [...data]);
    assert.equal(out[2], 'z');
  }
  // The whole message is bounded too.
  assert.throws(() => new FrameDecoder(1024, 4096).push(bytes), FrameTooLargeError);
  assert.throws(() => encodeFrame({ big: data }, 1024, 4096), FrameTooLargeError);
});

test('a snapshot-sized raft message larger than the frame limit reaches the peer', async () => {
  const { a, b, gotB } = await pair({ maxFrameBytes: 64 << 10 }, { maxFrameBytes: 64 << 10 });
  try {
    const data = new Uint8Array(1 << 20).map((_, i) => (i * 7) % 256);
    a.send({
      type: MessageType.Snap,
      from: 'a',
      to: 'b',
      term: 1,
      snapshot: { meta: { index: 5, term: 1, config: { voters: ['a', 'b'], learners: [] } }, data },
    });
    await until(() => gotB.length === 1);
    assert.deepEqual(Buffer.from(gotB[0]!.snapshot!.data), Buffer.from(data));
  } finally {
    await a.close();
    await b.close();
  }
});

test('a peer outside the cluster may not send a message larger than one frame', async () => {
  const { a, b, portB } = await pair({ maxFrameBytes: 1024 });
  try {
    const sock = connect(portB, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const closed = new Promise((r) => sock.once('close', r));
    sock.write(encodeFrame({ t: 'hello', v: PROTOCOL_VERSION, cluster: '', from: 'stranger', to: '' }, 1024));
    // A request split over several frames: refused, the connection closed.
    sock.write(encodeFrame({ t: 'req', id: 1, body: new Uint8Array(10_000) }, 1024));
    await closed;
    // An empty piece that says more follow is refused too (encodeFrame never writes one).
    const d = new FrameDecoder(1024);
    const empty = Buffer.alloc(4);
    empty.writeUInt32BE(0x8000_0000, 0);
    assert.throws(() => d.push(empty), /empty frame/);
  } finally {
    await a.close();
    await b.close();
  }
});

test('a peer of another protocol version is refused at the handshake', async () => {
  const { a, b, portB } = await pair();
  try {
    for (const v of [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1]) {
      const sock = connect(portB, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      const received: Buffer[] = [];
      sock.on('data', (d: Buffer) => received.push(d));
      const closed = new Promise((r) => sock.once('close', r));
      sock.write(encodeFrame({ t: 'hello', v, cluster: 'c1', from: 'old', to: 'b' }, 1024));
      await closed;
      // A reject naming the versions, then the connection closed: no welcome.
      const frames = new FrameDecoder(1024).push(Buffer.concat(received)) as { t: string; reason?: string }[];
      assert.deepEqual(
        frames.map((f) => f.t),
        ['reject'],
      );
      assert.match(frames[0]!.reason ?? '', new RegExp(`protocol version ${v} is not ${PROTOCOL_VERSION}`));
      assert.equal(b.stats.rejectedHandshakes > 0, true);
    }
  } finally {
    await a.close();
    await b.close();
  }
});
