/**
 * What a node says about its peers is something a person can act on:
 *
 * - a peer that stays unreachable: the line names the peer, the URL this node dials, the last
 *   dial error, and what to check (is it running, is the --peers address right, a firewall on
 *   that port, the across-laptops guide). The old line was "node b unreachable for 30000 ms:
 *   dead-lettering its queue" and nothing else.
 * - a node on 0.0.0.0 without a secret warns once (it warned twice: its own line and the
 *   transport's), and the warning names --secret-file.
 *
 * In process (`startNode`) with a short unreachable bound (`peerDownMs`), so the test waits on
 * the log (bounded), never on the default 30 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { MemoryLogger } from '../../lib/logger.js';
import { peerAdviceLogger } from '../../lib/node/peer-advice.js';
import { startNode } from '../../lib/node/synod-node.js';
import { freePort, until } from '../helpers/node-processes.js';

const dir = mkdtempSync(path.join(tmpdir(), 'synod-peer-advice-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test(
  'an unreachable peer: one line saying what to check, and the node keeps retrying',
  async (t) => {
    const log = new MemoryLogger();
    const bPort = await freePort(); // nothing listens there
    const node = await startNode({
      id: 'a',
      listen: { host: '0.0.0.0', port: await freePort() },
      peers: [`b=ws://127.0.0.1:${bPort}`],
      dataDir: path.join(dir, 'a'),
      cluster: 'advice',
      logger: log,
      heartbeatMs: 20,
      electionMs: 100,
      peerDownMs: 300,
    });
    t.teardown(() => node.stop());
    const line = await until(
      'the unreachable line',
      () => log.lines.find((l) => l.fields?.code === 'SYNOD_ERR_PEER_UNREACHABLE'),
      30_000,
      50,
    );
    t.equal(line.level, 'warn');
    t.match(
      line.message,
      new RegExp(
        `^node b unreachable at ws://127\\.0\\.0\\.1:${bPort} for 300 ms \\(last attempt: .+\\); messages queued for it are dropped — check that b is running, that ws://127\\.0\\.0\\.1:${bPort} in --peers is its address \\(its --listen/--advertise\\), and that no firewall blocks port ${bPort} from this machine \\(see docs/across-laptops\\.md\\); still retrying$`,
      ),
      'names the peer, its URL, the last error and what to check',
    );
    t.match(line.message, /refused|ECONNREFUSED|connect/i, 'the last dial error is in the line');
    t.same(line.fields, { peer: 'b', code: 'SYNOD_ERR_PEER_UNREACHABLE' }, 'fields kept for JSON');

    // 0.0.0.0 without a secret: exactly one warning, and it names the flag.
    const warnings = log.lines.filter(
      (l) => l.level === 'warn' && /WITHOUT a cluster secret/i.test(l.message),
    );
    t.equal(warnings.length, 1, 'the no-secret warning is printed once, not twice');
    t.match(warnings[0]?.message, /--secret-file/, 'and it says which flag to use');
    t.ok(
      log.lines.some((l) => l.level === 'debug' && l.fields?.code === 'SYNOD_WARN_NO_SECRET'),
      "the transport's own copy is kept at debug",
    );

    // Still retrying: a node started at b's address afterwards links up with a.
    const b = await startNode({
      id: 'b',
      listen: { host: '127.0.0.1', port: bPort },
      peers: [`a=${node.url.replace(/\/\/[^:]+:/, '//127.0.0.1:')}`],
      dataDir: path.join(dir, 'b'),
      cluster: 'advice',
      logger: new MemoryLogger(),
      heartbeatMs: 20,
      electionMs: 100,
    });
    t.teardown(() => b.stop());
    await until(
      'the link a → b',
      () => (node.transport.linkStatus('b')?.state === 'up' ? true : undefined),
      30_000,
      50,
    );
    t.pass('a linked to b once b was started');
  },
);

t.test('peerAdviceLogger passes other lines through unchanged', async (t) => {
  const log = new MemoryLogger();
  const l = peerAdviceLogger(log, { peerUrl: () => 'wss://h:9' });
  l.log('info', 'link to b up', { peer: 'b' });
  l.log('warn', 'something', { code: 'SYNOD_ERR_OTHER' });
  // An unreachable line without a duration stays as it is (nothing to rewrite safely).
  l.log('warn', 'node b went away', { peer: 'b', code: 'SYNOD_ERR_PEER_UNREACHABLE' });
  l.log('warn', 'node b unreachable for 5 ms: x', {
    peer: 'b',
    code: 'SYNOD_ERR_PEER_UNREACHABLE',
  });
  t.same(
    log.lines.slice(0, 3).map((x) => x.message),
    ['link to b up', 'something', 'node b went away'],
  );
  t.match(log.lines[3]?.message, /^node b unreachable at wss:\/\/h:9 for 5 ms; .*port 9 from/);
});
