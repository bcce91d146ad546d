import t from 'tap';
import {
  CloseCode,
  closeCodeFor,
  closeReason,
  ErrorCode,
  errorCodeForClose,
} from '../../transports/websocket/errors.js';
import { isLoopbackHost, parsePeer, resolveOptions } from '../../transports/websocket/options.js';

t.test('peer specs', async (t) => {
  t.same(parsePeer('b=ws://10.0.0.2:7400'), { id: 'b', url: 'ws://10.0.0.2:7400/' });
  t.same(parsePeer({ id: 'c', url: 'wss://h:1' }), { id: 'c', url: 'wss://h:1/' });
  for (const bad of ['b', '=ws://h:1', 'b=http://h:1', 'b=ws://h', 'b c=ws://h:1', 'b=::']) {
    t.throws(() => parsePeer(bad), { code: ErrorCode.BAD_CONFIG }, `refused: ${bad}`);
  }
});

t.test('options are validated', async (t) => {
  const ok = resolveOptions({ nodeId: 'a' });
  t.equal(ok.maxFrameBytes, 16 * 1024 * 1024, 'default frame limit 16 MiB');
  t.equal(ok.cluster, 'synod');
  t.equal(ok.maskFrames, false);
  const bad: Record<string, unknown>[] = [
    { nodeId: 'a b' },
    { nodeId: 'a', peers: ['a=ws://h:1'] },
    { nodeId: 'a', peers: ['b=ws://h:1', 'b=ws://h:2'] },
    { nodeId: 'a', maxFrameBytes: 10 },
    { nodeId: 'a', secret: '' },
    { nodeId: 'a', heartbeatIntervalMs: 5000, heartbeatTimeoutMs: 1000 },
    { nodeId: 'a', backoff: { jitter: 2 } },
    { nodeId: 'a', listen: { port: 70000 } },
    { nodeId: 'a', maxQueueEnvelopes: 0 },
    { nodeId: 'a', cluster: '' },
  ];
  for (const o of bad) {
    t.throws(() => resolveOptions(o as never), { code: ErrorCode.BAD_CONFIG }, JSON.stringify(o));
  }
});

t.test('loopback detection', async (t) => {
  for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
    t.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', '10.0.0.1', '::', 'example.com']) t.notOk(isLoopbackHost(h), h);
});

t.test('close codes and reasons', async (t) => {
  const r = closeReason(ErrorCode.AUTH_FAILED, 'x'.repeat(500));
  t.ok(Buffer.byteLength(r) <= 123, 'close reason fits a close frame');
  t.ok(r.startsWith(`${ErrorCode.AUTH_FAILED}: `));
  t.equal(errorCodeForClose(4011, r), ErrorCode.AUTH_FAILED, 'code read from the reason');
  t.equal(errorCodeForClose(4011, ''), ErrorCode.AUTH_FAILED, 'code read from the close code');
  t.equal(errorCodeForClose(CloseCode.MESSAGE_TOO_BIG, ''), ErrorCode.FRAME_TOO_LARGE);
  t.equal(errorCodeForClose(CloseCode.GOING_AWAY, ''), ErrorCode.PEER_CLOSED);
  t.equal(errorCodeForClose(1006, ''), ErrorCode.CONNECTION_FAILED);
  const codes = Object.values(closeCodeFor).filter((c) => c >= 4000);
  t.equal(
    new Set(codes).size,
    codes.length - 1,
    'private close codes are unique but for the shared 4002',
  );
  t.equal(
    new Set(Object.values(ErrorCode)).size,
    Object.values(ErrorCode).length,
    'error codes unique',
  );
  t.ok(
    Object.values(ErrorCode).every((c) => /^SYNOD_ERR_[A-Z_]+$/.test(c)),
    'stable code format',
  );
});
