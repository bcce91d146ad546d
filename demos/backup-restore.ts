/**
 * Backup and point-in-time restore of a KV cluster, in one command:
 *
 *     npx tsx demos/backup-restore.ts
 *
 * A 3-node Raft cluster (in this process) holds user profiles. The backup agent joins it as
 * a learner and takes a full backup while writes go on, then an incremental one. Then the
 * accident: every profile is deleted. The agent has archived the log, so the state right
 * before the accident is restored from the repository (nearest backup + archived entries)
 * into the data directories of a brand-new 3-node cluster, which starts and serves every
 * profile again; each key is compared with what the cluster held before the accident.
 * Exit code 0 when every key matches.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeRestoredDataDir } from '../actors/backup/datadir.js';
import { startEmbeddedBackup } from '../actors/backup/embedded.js';
import { Repository } from '../actors/backup/repository.js';
import { planRestore, restore } from '../actors/backup/restore.js';
import { KV_KIND } from '../actors/backup/state-kind.js';
import { verify } from '../actors/backup/verify.js';
import { KvStateMachine } from '../actors/kv/state-machine.js';
import type { KvOp, KvResult } from '../actors/kv/types.js';
import { LocalCluster } from '../lib/cluster/local-cluster.js';

export interface BackupRestoreDemoResult {
  readonly keysChecked: number;
  readonly mismatches: number;
  readonly restoredIndex: number;
  readonly writesDuringBackup: number;
}

export async function runBackupRestoreDemo(
  options: { print?: (line: string) => void; profiles?: number } = {},
): Promise<BackupRestoreDemoResult> {
  const print = options.print ?? ((l: string) => console.log(l));
  const profiles = options.profiles ?? 100;
  let n = 0;
  const step = (title: string) => print(`\n== ${++n}. ${title}`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-backup-demo-'));
  const machines = new Map<string, KvStateMachine>();
  const source = new LocalCluster<KvOp, KvResult>({
    nodes: ['a', 'b', 'c'],
    name: 'backup-demo',
    stateMachine: (id) => {
      const sm = new KvStateMachine();
      machines.set(id, sm);
      return sm;
    },
  });
  let target: LocalCluster<KvOp, KvResult> | undefined;
  try {
    step('Start a 3-node cluster and write user profiles');
    await source.start();
    const leader = await source.waitForLeader(10_000);
    for (let i = 0; i < profiles; i++) {
      const key = `user/${String(i).padStart(4, '0')}`;
      await source.propose({ t: 'put', key, value: JSON.stringify({ name: `user ${i}`, v: 1 }) });
    }
    print(`leader ${leader}; wrote ${profiles} profiles`);

    step('The backup agent joins as a learner and takes a full backup while writes go on');
    const repoDir = path.join(dir, 'repo');
    const repo = await Repository.init(repoDir, { state: 'kv', clusterId: 'backup-demo' });
    print(`repository ${repoDir}`);
    const agent = await startEmbeddedBackup(source, repo);
    let writing = true;
    let during = 0;
    const writer = (async () => {
      while (writing) {
        await source.propose({ t: 'put', key: `visits/${during % 20}`, value: String(during) });
        during++;
      }
    })();
    await agent.live.catchUp(30_000);
    const full = await agent.live.backup('full');
    writing = false;
    await writer;
    print(
      `full backup ${full.id} at index ${full.index}: ${full.bytes} bytes in ${full.chunks} chunk(s); ${during} writes committed meanwhile`,
    );

    step('More changes, then an incremental backup');
    for (let i = 0; i < profiles; i += 10) {
      const key = `user/${String(i).padStart(4, '0')}`;
      await source.propose({ t: 'put', key, value: JSON.stringify({ name: `user ${i}`, v: 2 }) });
    }
    await agent.live.catchUp(30_000);
    const incr = await agent.live.backup('incr');
    print(`incremental backup ${incr.id}: ${incr.records} records, parent ${incr.parent}`);

    for (let i = 0; i < 5; i++) {
      await source.propose({ t: 'put', key: `orders/${i}`, value: `order ${i}` });
    }
    print('5 orders written after the incremental backup (only the log archive has them)');

    step('The accident: every profile is deleted');
    const sm = machines.get(source.leader() as string) as KvStateMachine;
    const before = new Map(sm.range({ start: '' }).kvs.map((kv) => [kv.key, kv.value]));
    const goodIndex = source.raft(source.leader() as string)?.status().commit ?? 0;
    print(`last good state: log index ${goodIndex}, ${before.size} keys`);
    for (let i = 0; i < profiles; i++) {
      await source.propose({ t: 'del', key: `user/${String(i).padStart(4, '0')}` });
    }
    print(`now ${sm.range({ start: 'user/', end: 'user0' }).count} profiles are left`);
    await agent.live.catchUp(30_000);
    await agent.live.leave();
    await agent.stop();
    const v = await verify(repo);
    print(
      `the agent archived the log up to the deletes and left; verify: ${v.ok ? 'OK' : 'DAMAGED'} (${v.backups} backups, ${v.segments} archive segments, indices ${v.archivedFrom}..${v.archivedTo})`,
    );

    step(`Restore to index:${goodIndex} (just before the accident) into a new cluster`);
    const plan = await planRestore(repo, { kind: 'index', index: goodIndex });
    print(
      `plan: backup chain ${plan.chain.map((m) => m.id).join(' → ')} + ${plan.replay} archived entries`,
    );
    const res = await restore(
      repo,
      { kind: 'index', index: goodIndex },
      { factory: KV_KIND.factory },
    );
    const members = ['x', 'y', 'z'];
    const dataDir = path.join(dir, 'restored');
    for (const m of members) {
      await writeRestoredDataDir(path.join(dataDir, m), res, {
        clusterId: 'backup-demo-restored',
        members,
        now: Date.now(),
        encodeImage: (state) => KV_KIND.nodeImage(state, res.index),
        source: { repo: repoDir, target: `index:${goodIndex}` },
      });
    }
    print(
      `state digest ${res.digest.slice(0, 16)}… matches the manifest; wrote data directories for ${members.join(', ')}`,
    );
    const restoredMachines = new Map<string, KvStateMachine>();
    target = new LocalCluster<KvOp, KvResult>({
      nodes: members,
      name: 'backup-demo-restored',
      dataDir,
      stateMachine: (id) => {
        const m = new KvStateMachine();
        restoredMachines.set(id, m);
        return m;
      },
    });
    await target.start();
    const newLeader = await target.waitForLeader(10_000);
    const w = await target.propose({ t: 'put', key: 'restored', value: 'yes' });
    print(`new cluster up: leader ${newLeader}, first write committed at index ${w.index}`);

    step('Check every key on every node of the new cluster');
    let mismatches = 0;
    for (const id of members) {
      await target.waitFor(
        () => ((target?.raft(id)?.status().applied ?? 0) >= w.index ? true : undefined),
        10_000,
        `${id} to apply`,
      );
      const m = restoredMachines.get(id) as KvStateMachine;
      for (const [k, value] of before) if (m.get(k)?.value !== value) mismatches++;
      const extra = m
        .range({ start: '' })
        .kvs.filter((kv) => kv.key !== 'restored' && !before.has(kv.key));
      mismatches += extra.length;
    }
    const profilesBack = (restoredMachines.get(newLeader) as KvStateMachine).range({
      start: 'user/',
      end: 'user0',
    }).count;
    print(
      `${profilesBack} profiles are back; ${before.size} keys × ${members.length} nodes compared with the state before the accident: ${mismatches} mismatches`,
    );
    print(`\ndone: ${before.size} keys checked, ${mismatches} mismatches`);
    return {
      keysChecked: before.size,
      mismatches,
      restoredIndex: res.index,
      writesDuringBackup: during,
    };
  } finally {
    await target?.shutdown();
    await source.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runBackupRestoreDemo().then(
    (r) => {
      process.exitCode = r.mismatches === 0 && r.keysChecked > 0 ? 0 : 1;
    },
    (err: unknown) => {
      console.error(`backup-restore demo failed: ${(err as Error).stack ?? String(err)}`);
      process.exitCode = 1;
    },
  );
}
