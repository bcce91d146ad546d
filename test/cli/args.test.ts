import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CliError, parseArgs, reportError } from '../../cli/args.js';

const specs = {
  id: { kind: 'string', description: 'node id', required: true },
  listen: { kind: 'string', description: 'host:port', default: '127.0.0.1:7001' },
  peers: { kind: 'list', description: 'peers' },
  protocol: {
    kind: 'string',
    description: 'protocol',
    choices: ['raft', 'paxos'],
    default: 'raft',
  },
  verbose: { kind: 'boolean', description: 'stacks', default: false },
  clients: { kind: 'number', description: 'clients', default: 1 },
} as const;

t.test('flags, env and config file with precedence flag > env > config > default', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-args-'));
  const cfg = path.join(dir, 'node.json');
  writeFileSync(cfg, JSON.stringify({ id: 'from-config', listen: '0.0.0.0:9000', clients: 4 }));
  const p = parseArgs(['--config', cfg, '--listen=1.2.3.4:1', 'pos'], specs, {
    SYNOD_CLIENTS: '8',
    SYNOD_PEERS: 'b=ws://x:1,c=ws://y:2',
  });
  t.equal(p.options.id, 'from-config');
  t.equal(p.sources.id, 'config');
  t.equal(p.options.listen, '1.2.3.4:1');
  t.equal(p.sources.listen, 'flag');
  t.equal(p.options.clients, 8, 'env beats config');
  t.same(p.options.peers, ['b=ws://x:1', 'c=ws://y:2']);
  t.equal(p.options.protocol, 'raft');
  t.same(p.positionals, ['pos']);
  t.equal(parseArgs(['--id', 'a', '--verbose'], specs, {}).options.verbose, true);
  t.equal(
    parseArgs(['--id', 'a', '--no-verbose'], specs, { SYNOD_VERBOSE: '1' }).options.verbose,
    false,
  );
});

t.test('bad input is a one-line CliError', async (t) => {
  t.throws(() => parseArgs([], specs, {}), /--id is required/);
  t.throws(() => parseArgs(['--id', 'a', '--bogus'], specs, {}), /unknown option --bogus/);
  t.throws(() => parseArgs(['--id'], specs, {}), /--id needs a value/);
  t.throws(() => parseArgs(['--id', 'a', '--protocol', 'zab'], specs, {}), /one of raft, paxos/);
  t.throws(() => parseArgs(['--id', 'a', '--clients', 'many'], specs, {}), /must be a number/);
  t.throws(
    () => parseArgs(['--id', 'a', '--config', '/nonexistent.json'], specs, {}),
    /cannot read config file/,
  );
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-args-'));
  writeFileSync(path.join(dir, 'bad.json'), '{ nope');
  t.throws(
    () => parseArgs(['--id', 'a', '--config', path.join(dir, 'bad.json')], specs, {}),
    /not a JSON object/,
  );
  writeFileSync(path.join(dir, 'extra.json'), '{"colour":"red"}');
  t.throws(
    () => parseArgs(['--id', 'a', '--config', path.join(dir, 'extra.json')], specs, {}),
    /unknown setting "colour"/,
  );
});

t.test('reportError prints one actionable line, the stack only when verbose', async (t) => {
  const out: string[] = [];
  const inUse = Object.assign(new Error('listen EADDRINUSE'), {
    code: 'EADDRINUSE',
    port: 7001,
    address: '0.0.0.0',
  });
  t.equal(
    reportError(inUse, false, (s) => out.push(s)),
    1,
  );
  t.match(out[0], /port 7001 on 0.0.0.0 is already in use/);
  t.equal(out.length, 1);
  t.equal(
    reportError(new CliError('bad flag'), true, (s) => out.push(s)),
    2,
  );
  t.ok(out.length >= 3, 'verbose adds the stack');
});
