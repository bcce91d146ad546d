/**
 * `synod member remove --cluster ws://h:p,… --id n3 --admin-secret-file F [--secret-file F]`:
 * removes a member (voter or learner) from a Raft cluster through the leader's admin actor.
 * The request proves the admin secret with an HMAC (lib/node/admin-auth.ts): the nodes must
 * have been started with the same --admin-secret-file. Afterwards stop the removed node and
 * wipe its data directory before it joins again (`synod node --join …`), as with etcd.
 *
 * `synod member list --cluster …` prints the voters and learners as one node sees them.
 */
import { makeAdminProof } from '../../lib/node/admin-auth.js';
import type { AdminMsg, ControlReply, NodeStatus } from '../../lib/node/node-admin.js';
import {
  clusterClientSpecs,
  discoverPeers,
  openAdminClient,
  readClusterTarget,
} from '../admin-client.js';
import { CliError, parseArgs, reportError, usage } from '../args.js';
import { readSecretFile } from '../secret.js';

export const summary = 'list or remove cluster members (remove needs the admin secret)';

const specs = {
  ...clusterClientSpecs,
  id: { kind: 'string', description: 'the member to remove' },
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
  let client: Awaited<ReturnType<typeof openAdminClient>> | undefined;
  try {
    if (action !== 'remove' && action !== 'list')
      throw new CliError(`unknown action "${action}": use "member list" or "member remove"`, 2);
    const { options: o, sources } = parseArgs(rest, specs);
    verbose = o.verbose === true;
    const target = readClusterTarget(o, sources);
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
    const { peers, undiscovered } = await discoverPeers(target, 5000);
    if (undiscovered[0] !== undefined) throw new CliError(undiscovered[0].error, 1);
    client = await openAdminClient('member', target, peers);
    const sys = client.system;
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
          target.clusterName,
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
    await client?.close();
  }
}
