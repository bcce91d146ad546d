/**
 * A node's transport refuses (or is refused by) a misconfigured peer on every redial: a wrong
 * cluster secret, another cluster's name, another protocol version, a `--peers` URL that reaches
 * a different node. Logged as is, that is one ERROR line per retry, forever, and none says what
 * to do. This filter turns it into one line per peer and problem, saying what is wrong and what
 * to do, and logs the repeats at debug. The node keeps running and retrying (the peer may be the
 * misconfigured one, and may be fixed and restarted); once the link to that peer comes up, a
 * later refusal is reported again.
 */
import type { Logger, LogLevel } from '../logger.js';

/** What each refusal means and what the operator should check. */
export const ADVICE: Record<string, { what: string; todo: string }> = {
  SYNOD_ERR_AUTH_FAILED: {
    what: 'wrong cluster secret',
    todo: 'check that --secret-file holds the same secret on every node (or that none has one)',
  },
  SYNOD_ERR_WRONG_CLUSTER: {
    what: 'another cluster name',
    todo: 'check that --cluster (SYNOD_CLUSTER_NAME) is the same on every node',
  },
  SYNOD_ERR_VERSION_MISMATCH: {
    what: 'another wire protocol version',
    todo: 'run the same Synod version on every node',
  },
  SYNOD_ERR_WRONG_NODE: {
    what: 'the URL reaches another node',
    todo: 'check the id=URL pairs in --peers (and the peer’s --advertise)',
  },
  SYNOD_ERR_SELF_CONNECTION: {
    what: 'a peer URL points back at this node',
    todo: 'check --peers and --advertise',
  },
  SYNOD_ERR_PEER_NOT_ALLOWED: {
    what: 'this node is not in the peer’s member list',
    todo: 'add it with synod node --join, or list it in the peer’s --peers',
  },
  SYNOD_ERR_DUPLICATE_NODE: {
    what: 'another live process already uses this node id',
    todo: 'give every process its own --id (a backup agent too: --agent-id), or stop the other one',
  },
  SYNOD_ERR_IDENTITY_MISMATCH: {
    what: 'the node id is not in the TLS client certificate',
    todo: 'issue each node a certificate whose CN or SAN is its --id',
  },
};

/**
 * What a refusal means to a client command (`synod kv`): the same problems, but the fix is in
 * the client's own flags.
 */
export const CLIENT_ADVICE: Record<string, { what: string; todo: string }> = {
  SYNOD_ERR_AUTH_FAILED: {
    what: 'wrong cluster secret',
    todo: 'pass the secret file the nodes were started with: --secret-file FILE (or SYNOD_SECRET_FILE); none if the nodes have none',
  },
  SYNOD_ERR_WRONG_CLUSTER: {
    what: 'another cluster name',
    todo: "pass the nodes' cluster name with --cluster-name (or SYNOD_CLUSTER_NAME)",
  },
  SYNOD_ERR_VERSION_MISMATCH: {
    what: 'another wire protocol version',
    todo: 'run the same Synod version as the nodes',
  },
  SYNOD_ERR_WRONG_NODE: {
    what: 'the URL reaches another node',
    todo: 'check the id=URL pairs in --cluster (or give bare ws://host:port URLs)',
  },
  SYNOD_ERR_SELF_CONNECTION: {
    what: 'a URL points back at this client',
    todo: 'check --cluster',
  },
  SYNOD_ERR_PEER_NOT_ALLOWED: {
    what: 'the node does not allow this client',
    todo: "check the node's membership settings",
  },
};

/** What a running node does after a refusal: it keeps retrying the link. */
export const RETRYING = 'still retrying, repeats of this are logged at debug';

export class RefusalReport {
  /** `peer code` pairs already reported since that peer's link was last up. */
  private readonly reported = new Set<string>();

  /**
   * `log`: where lines go. `afterwards`: what follows the advice (a node keeps retrying; a client
   * gives up at its request's deadline).
   */
  constructor(
    private readonly log: Logger,
    /** Settable: a node that is still joining does not retry a refusal (the join ends). */
    public afterwards = RETRYING,
  ) {}

  /** The transport's logger: refusals once per peer and code, everything else unchanged. */
  readonly logger: Logger = {
    log: (level: LogLevel, message: string, fields?: Record<string, unknown>) => {
      const code = typeof fields?.code === 'string' ? fields.code : undefined;
      const advice = code !== undefined ? ADVICE[code] : undefined;
      if (advice === undefined || code === undefined) {
        this.log.log(level, message, fields);
        return;
      }
      const peer =
        typeof fields?.peer === 'string'
          ? fields.peer
          : typeof fields?.address === 'string'
            ? fields.address
            : 'unknown';
      const key = `${peer} ${code}`;
      if (this.reported.has(key)) {
        this.log.log('debug', message, fields);
        return;
      }
      // Bounded: clients with random ids (a `synod status` with the wrong secret) come and go.
      if (this.reported.size >= 1024) this.reported.clear();
      this.reported.add(key);
      // Which side refused does not change the fix; the transport's own text says the detail.
      const detail = message.replace(/^.*?SYNOD_ERR_[A-Z_]+: /, '');
      this.log.log(
        'error',
        `peer ${peer}: handshake refused: ${advice.what} (${code}: ${detail}) — ${advice.todo}${this.afterwards ? `; ${this.afterwards}` : ''}`,
        { peer, code, refusal: true },
      );
    },
  };

  /** The link to `peer` came up: a later refusal is news again. */
  linkUp(peer: string): void {
    for (const key of [...this.reported]) if (key.startsWith(`${peer} `)) this.reported.delete(key);
  }
}
