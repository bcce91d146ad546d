/**
 * The packed wire form of AppendEntries entries: round trip, zero-copy views, and clear
 * SYNOD_ERR_RAFT_BAD_MESSAGE errors on malformed bytes (truncated header, data past the
 * end, unknown entry type).
 */
import t from 'tap';
import { RaftError } from '../../actors/raft/core/types.js';
import { packEntries, unpackEntries } from '../../actors/raft/entry-codec.js';
import type { LogEntry } from '../../lib/storage/types.js';

const entries: LogEntry[] = [
  { index: 7, term: 3, type: 'normal', data: new Uint8Array([1, 2, 3]) },
  { index: 8, term: 3, type: 'config', data: new Uint8Array([9]) },
  { index: 9, term: 4, type: 'noop', data: new Uint8Array(0) },
  { index: 2 ** 40, term: 2 ** 33, type: 'normal', data: new Uint8Array(300).fill(5) },
];

t.test('round trip', async (t) => {
  const bytes = packEntries(entries);
  t.equal(bytes.byteLength, entries.length * 21 + 3 + 1 + 0 + 300);
  const back = unpackEntries(bytes);
  t.same(
    back.map((e) => ({ ...e, data: [...e.data] })),
    entries.map((e) => ({ ...e, data: [...e.data] })),
  );
  t.equal(back[0]?.data.buffer, bytes.buffer, 'entry data are views into the received bytes');
  t.same(unpackEntries(packEntries([])), [], 'an empty batch');
});

t.test('malformed bytes are refused with a stable code', async (t) => {
  const bytes = packEntries(entries.slice(0, 1));
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated header', bytes.subarray(0, 10), /truncated header at byte 0/],
    ['data past the end', bytes.subarray(0, bytes.byteLength - 1), /runs past the end/],
    [
      'unknown type',
      (() => {
        const b = bytes.slice();
        b[16] = 9;
        return b;
      })(),
      /unknown entry type/,
    ],
  ];
  for (const [name, b, msg] of cases) {
    let err: unknown;
    try {
      unpackEntries(b);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof RaftError, `${name}: a RaftError`);
    t.equal((err as RaftError).code, 'SYNOD_ERR_RAFT_BAD_MESSAGE', `${name}: its code`);
    t.match((err as Error).message, msg, `${name}: says where`);
  }
});
