/**
 * Wrong wire version, end to end: two real transports, one playing a node of another Synod
 * version (wire version 1). In both directions the handshake is refused with
 * SYNOD_ERR_VERSION_MISMATCH (close code 4012), counted and logged at error level on BOTH
 * sides with the two versions, the link never comes up, and the refusal reaches `links$`.
 */
import t from 'tap';
import { Random } from '../../lib/random.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { WIRE_VERSION } from '../../transports/websocket/frames.js';
import type { LocalIdentity } from '../../transports/websocket/handshake.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { CapturingLogger, startNode, until, waitFor } from '../helpers/ws-util.js';

const OLD = WIRE_VERSION - 1;

/** Makes `t` speak wire version `wv` (as a build of another Synod version would). */
function speak(t: WebSocketTransport, wv: number): void {
  (t as unknown as { local: LocalIdentity }).local.wv = wv;
}

const refusalLines = (log: CapturingLogger) =>
  log.lines.filter((l) => l.level === 'error' && l.message.includes(ErrorCode.VERSION_MISMATCH));

for (const oldDials of [true, false]) {
  t.test(
    `${oldDials ? 'an older node dials a newer one' : 'a newer node dials an older one'}: refused and logged on both sides`,
    async (t) => {
      const quick = { backoff: { initialMs: 50, maxMs: 200 } };
      // the listening side is started first, then made old (or not) before anyone dials it
      const listener = await startNode(oldDials ? 'new' : 'old', quick);
      if (!oldDials) speak(listener.t, OLD);
      // the dialer is made old (or not) before it starts dialling
      const dialerLog = new CapturingLogger();
      const dialerT = new WebSocketTransport({
        nodeId: oldDials ? 'old' : 'new',
        ...quick,
        random: new Random(5),
        logger: dialerLog,
        peers: [`${listener.t.nodeId}=${listener.url}`],
      });
      if (oldDials) speak(dialerT, OLD);
      const dialer = { t: dialerT, log: dialerLog };
      t.teardown(async () => {
        await dialer.t.close();
        await listener.t.close();
      });
      const refusedP = waitFor(
        dialer.t.links$,
        (s) => (s.reason ?? '').startsWith(ErrorCode.VERSION_MISMATCH),
        10_000,
        'refusal on links$',
      );
      await dialer.t.start();
      const refused = await refusedP;
      t.not(refused.state, 'up');
      await until(
        () => refusalLines(listener.log).length > 0 && refusalLines(dialer.log).length > 0,
        10_000,
        'both logs',
      );
      const acceptorLine = refusalLines(listener.log)[0]!.message;
      const dialerLine = refusalLines(dialer.log)[0]!.message;
      t.match(
        acceptorLine,
        new RegExp(
          `^closing connection ${dialer.t.nodeId} \\(127\\.0\\.0\\.1:\\d+\\) #\\d+: ${ErrorCode.VERSION_MISMATCH}: peer ${dialer.t.nodeId} speaks wire v${oldDials ? OLD : WIRE_VERSION}/protocol v1, this node ${listener.t.nodeId} wire v${oldDials ? WIRE_VERSION : OLD}/protocol v1$`,
        ),
        'the refusing side names both versions',
      );
      t.match(
        dialerLine,
        new RegExp(
          `^peer ${listener.t.nodeId} \\(ws://127\\.0\\.0\\.1:\\d+/\\) #\\d+ refused the connection: ${ErrorCode.VERSION_MISMATCH}: peer ${dialer.t.nodeId} speaks wire v`,
        ),
        'the refused side logs it with the code and the versions',
      );
      t.ok(
        (listener.t.counters().errors[ErrorCode.VERSION_MISMATCH] ?? 0) >= 1,
        'counted by the refusing side',
      );
      t.ok(
        (dialer.t.counters().errors[ErrorCode.VERSION_MISMATCH] ?? 0) >= 1,
        'counted by the refused side',
      );
      t.equal(listener.t.counters().linksUp, 0, 'no link on the refusing side');
      t.equal(dialer.t.counters().linksUp, 0, 'no link on the refused side');
    },
  );
}
