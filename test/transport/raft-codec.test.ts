import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { EntryType, type Message, MessageType } from '../../src/raft/types.js';
import { encodeFrame, FrameDecoder } from '../../src/transport/frame.js';
import {
  decodeRaftMessage,
  encodeRaftMessage,
  fitsRaftCodec,
  RAFT_CODEC_MARKER,
} from '../../src/transport/raft-codec.js';

const types = Object.values(MessageType);
const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const nodeId = fc.string({ maxLength: 40 });

const message: fc.Arbitrary<Message> = fc
  .record(
    {
      type: fc.constantFrom(...types),
      from: nodeId,
      to: nodeId,
      term: u64,
      index: u64,
      logTerm: u64,
      commit: u64,
      reject: fc.constant(true),
      rejectHint: u64,
      readSeq: u64,
      context: fc.string({ maxLength: 60 }),
      transfer: fc.constant(true),
      commitOnly: fc.constant(true),
      entries: fc.array(
        fc.record({
          term: u64,
          index: u64,
          type: fc.constant(EntryType.Normal),
          data: fc.uint8Array({ maxLength: 300 }),
        }),
        { maxLength: 8 },
      ),
    },
    { requiredKeys: ['type', 'from', 'to', 'term'] },
  )
  .map((m) => m as Message);

/** What the receiver sees: entry data as plain bytes. */
const normal = (m: Message) => ({
  ...m,
  entries: m.entries?.map((e) => ({ ...e, data: Uint8Array.from(e.data) })),
});

test('every Raft message without a snapshot or membership entry round-trips through the layout', () => {
  fc.assert(
    fc.property(message, (m) => {
      assert.ok(fitsRaftCodec(m));
      const bytes = encodeRaftMessage(m);
      assert.equal(bytes[0], RAFT_CODEC_MARKER);
      const back = decodeRaftMessage(bytes);
      assert.deepEqual(normal(back), normal(m));
    }),
  );
});

test('frames carry Raft messages in the layout and everything else as msgpack, decoded alike', () => {
  fc.assert(
    fc.property(message, fc.integer({ min: 64, max: 4096 }), (m, maxFrameBytes) => {
      const decoder = new FrameDecoder(maxFrameBytes);
      const other = { t: 'req', id: 7, body: { kind: 'write', n: m.term } };
      const bytes = Buffer.concat([
        encodeFrame({ t: 'raft', m }, maxFrameBytes),
        encodeFrame(other, maxFrameBytes),
      ]);
      const out = decoder.push(bytes) as [{ t: string; m: Message }, unknown];
      assert.equal(out.length, 2);
      assert.equal(out[0].t, 'raft');
      assert.deepEqual(normal(out[0].m), normal(m));
      assert.deepEqual(out[1], other);
    }),
  );
});

test('snapshots and membership entries stay msgpack', () => {
  const withChange: Message = {
    type: MessageType.App,
    from: 'a',
    to: 'b',
    term: 2,
    entries: [
      {
        term: 2,
        index: 5,
        type: EntryType.ConfChange,
        data: new Uint8Array(),
        change: { type: 0, node: 'c' },
      },
    ],
  } as unknown as Message;
  const withSnapshot = {
    type: MessageType.Snap,
    from: 'a',
    to: 'b',
    term: 2,
    snapshot: {},
  } as unknown as Message;
  for (const m of [withChange, withSnapshot]) {
    assert.equal(fitsRaftCodec(m), false);
    const frame = encodeFrame({ t: 'raft', m }, 1 << 20);
    assert.notEqual(frame[4], RAFT_CODEC_MARKER);
    const [back] = new FrameDecoder(1 << 20).push(frame) as [{ m: Message }];
    assert.equal(back.m.type, m.type);
  }
  // A decoder never accepts a membership entry in the layout (it would lose its change).
  const bytes = encodeRaftMessage({
    type: MessageType.App,
    from: 'a',
    to: 'b',
    term: 1,
    entries: [{ term: 1, index: 1, type: EntryType.ConfChange, data: new Uint8Array() }],
  });
  assert.throws(() => decodeRaftMessage(bytes), /membership/);
});

test('entry data do not keep the frame they came in alive', () => {
  const m: Message = {
    type: MessageType.App,
    from: 'a',
    to: 'b',
    term: 1,
    entries: [{ term: 1, index: 1, type: EntryType.Normal, data: Buffer.from('hello') }],
  };
  const frame = Buffer.concat([encodeRaftMessage(m), Buffer.alloc(10_000)]).subarray(
    0,
    encodeRaftMessage(m).length,
  );
  const back = decodeRaftMessage(frame);
  assert.notEqual(back.entries![0]!.data.buffer, frame.buffer);
});

test('malformed payloads throw, never read out of bounds', () => {
  const packr = new Packr();
  fc.assert(
    fc.property(message, fc.nat(), fc.integer({ min: 0, max: 255 }), (m, at, byte) => {
      const bytes = Buffer.from(encodeRaftMessage(m));
      // Truncations always throw.
      const cut = at % bytes.length;
      if (cut > 0) assert.throws(() => decodeRaftMessage(bytes.subarray(0, cut)));
      // A changed byte either throws or decodes to some message (strings, numbers change).
      bytes[at % bytes.length] = byte;
      try {
        const back = decodeRaftMessage(bytes);
        assert.ok(Number.isSafeInteger(back.term) && back.term >= 0);
      } catch (err) {
        assert.ok(err instanceof Error);
      }
    }),
  );
  assert.throws(() => decodeRaftMessage(Buffer.from(packr.pack({ t: 'raft' }))), /marker/);
  // An entry count larger than the payload could hold.
  const huge = encodeRaftMessage({ type: MessageType.App, from: '', to: '', term: 1, entries: [] });
  huge.writeUInt32LE(0xffffffff, huge.length - 4);
  assert.throws(() => decodeRaftMessage(huge), /entry count/);
});

test('a term, index or counter that is not a whole number >= 0 is malformed', () => {
  for (const bad of [-1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    const bytes = encodeRaftMessage({ type: MessageType.App, from: 'a', to: 'b', term: 1, index: 7 });
    // term is the first f64, after marker, version, type, flags and the two ids.
    bytes.writeDoubleLE(bad, 3 + 2 + (2 + 1) + (2 + 1));
    assert.throws(() => decodeRaftMessage(bytes), /not a whole number/, String(bad));
  }
});
