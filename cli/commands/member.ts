/**
 * `synod member remove --cluster ws://h:p,… --id n3 --admin-secret-file F [--secret-file F]`:
 * removes a member (voter or learner) from a Raft cluster through the leader's admin actor.
 * The request proves the admin secret with an HMAC (lib/node/admin-auth.ts): the nodes must
 * have been started with the same --admin-secret-file. Afterwards stop the removed node and
 * wipe its data directory before it joins again (`synod node --join …`), as with etcd.
 *
 * `synod member list --cluster …` prints the voters and learners as one node sees them.
 */
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { makeAdminProof } from '../../lib/node/admin-auth.js';
import { discoverNodeId, readTlsCaFile } from '../../lib/node/discover.js';
import type { AdminMsg, ControlReply, NodeStatus } from '../../lib/node/node-admin.js';
import { randomFromEntropy } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { CliError, parseArgs, reportError, usage } from '../args.js';
import { readSecretFile } from '../secret.js';

export const summary = 'list or remove cluster members (remove needs the admin secret)';

const specs = {
  cluster: {
    kind: 'list',
    description: 'nodes to ask: ws://host:port or id=ws://host:port',
    required: true,
  },
  id: { kind: 'string', description: 'the member to remove' },
  'cluster-name': {
    kind: 'string',
    description: 'cluster name',
    default: 'synod',
    env: 'SYNOD_CLUSTER_NAME',
  },
  'secret-file': { kind: 'string', description: 'file holding the cluster secret' },
  'tls-ca': {
    kind: 'string',
    description: "PEM CA that signed the nodes' certificates (wss:// with a private CA)",
    env: 'SYNOD_TLS_CA',
  },
  'admin-secret-file': {
    kind: 'string',
    description: 'file holding the admin secret the nodes were started with',
  },
  'timeout-ms': { kind: 'number', description: 'how long to wait for an answer', default: 30_000 },
  json: { kind: 'boolean', description: 'print JSON', default: false },
  verbose: { kind: 'boolean', description: 'print stack traces on errors', default: false },
} as const;

const USAGE = `member list|remove --cluster ws://host:port,… [--id ID] [options]`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.length === 0) {
    console.log(usage('member', USAGE, specs));
    return argv.length === 0 ? 2 : 0;
  }
  let verbose = argv.includes('--verbose');
  const [action, ...rest] = argv;
  let system: ActorSystem | undefined;
  let transport: WebSocketTransport | undefined;
  try {
    if (action !== 'remove' && action !== 'list')
      throw new CliError(`unknown action "${action}": use "member list" or "member remove"`, 2);
    const { options: o, sources } = parseArgs(rest, specs);
    verbose = o.verbose === true;
    const clusterName = o['cluster-name'] as string;
    const timeoutMs = o['timeout-ms'] as number;
    const id = o.id as string | undefined;
    let adminSecret: string | undefined;
    if (action === 'remove') {
      if (id === undefined) throw new CliError('member remove needs --id ID', 2);
      adminSecret = readSecretFile(o['admin-secret-file'] as string | undefined);
      if (adminSecret === undefined)
        throw new CliError(
          'member remove needs --admin-secret-file (the admin secret the nodes were started with)',
          2,
          'SYNOD_ERR_ADMIN_REFUSED',
        );
    }
    const secret = readSecretFile(o['secret-file'] as string | undefined);
    const caFile = (o['tls-ca'] as string | undefined) || undefined;
    if (caFile !== undefined) {
      try {
        readTlsCaFile(caFile, sources['tls-ca'] === 'env' ? 'SYNOD_TLS_CA' : '--tls-ca');
      } catch (err) {
        throw new CliError((err as Error).message, 2);
      }
    }
    const peers: { id: string; url: string }[] = [];
    for (const e of o.cluster as string[]) {
      const eq = e.indexOf('=');
      if (eq > 0) peers.push({ id: e.slice(0, eq), url: e.slice(eq + 1) });
      else
        peers.push({
          id: await discoverNodeId(e, {
            cluster: clusterName,
            timeoutMs: 5000,
            auth: secret !== undefined,
            ...(caFile !== undefined ? { caFile } : {}),
          }),
          url: e,
        });
    }
    const random = randomFromEntropy();
    const nodeId = `member-${random.nextUint32().toString(36)}`;
    transport = await WebSocketTransport.create({
      nodeId,
      cluster: clusterName,
      peers: peers.map((p) => `${p.id}=${p.url}`),
      random: random.fork(),
      ...(secret ? { secret } : {}),
      ...(caFile !== undefined ? { tls: { caFile } } : {}),
      logger: silentLogger,
    } as ConstructorParameters<typeof WebSocketTransport>[0]);
    const sys = new ActorSystem({ nodeId, transport, random, logger: silentLogger });
    system = sys;
    // The first node that answers; a follower forwards a removal to its leader.
    let lastError = 'no node answered';
    for (const p of peers) {
      try {
        if (action === 'list') {
          const s = (await sys.ask(
            `${p.id}/admin`,
            { type: 'node.status' } as AdminMsg & { type: 'node.status' },
            Math.min(timeoutMs, 5000),
          )) as NodeStatus;
          if (o.json)
            console.log(JSON.stringify({ voters: s.voters, learners: s.learners, via: s.id }));
          else {
            console.log(`voters:   ${s.voters.join(', ') || '(none known)'}`);
            console.log(`learners: ${s.learners.join(', ') || '(none)'}`);
            console.log(`(as ${s.id} sees it; leader ${s.leader ?? 'unknown'})`);
          }
          return 0;
        }
        const proof = makeAdminProof(
          adminSecret as string,
          clusterName,
          'node.remove',
          id as string,
          Date.now(),
        );
        const r = (await sys.ask(
          `${p.id}/admin`,
          { type: 'node.remove', id, ...proof } as AdminMsg & { type: 'node.remove' },
          timeoutMs,
        )) as ControlReply;
        if (o.json) console.log(JSON.stringify(r));
        if (!r.ok) {
          const code = /^(SYNOD_ERR_[A-Z_]+)/.exec(r.message)?.[1] ?? 'SYNOD_ERR_MEMBER_REMOVE';
          throw new CliError(
            code === 'SYNOD_ERR_MEMBER_REMOVE' ? `${code}: ${r.message}` : r.message,
            1,
            code,
          );
        }
        if (!o.json) console.log(r.message);
        return 0;
      } catch (err) {
        if (err instanceof CliError) throw err;
        lastError = `${p.id} (${p.url}): ${(err as Error).message}`;
      }
    }
    throw new CliError(`no node answered: ${lastError}`, 1, 'SYNOD_ERR_UNAVAILABLE');
  } catch (err) {
    return reportError(err, verbose);
  } finally {
    await system?.shutdown();
    await transport?.close(100);
  }
}
