import { randomBytes } from 'node:crypto';
import { Command, CommanderError } from 'commander';
import { Agent } from '../agent/agent.js';
import { ClientAgent } from '../agent/client/client-agent.js';
import { type AgentFlags, buildConfig, ConfigError } from '../agent/config.js';
import { createLogger } from '../agent/logging.js';
import { normalizeArgv } from './argv.js';
import { AgentCallError, agentAddress, callAgent, callAgentOk } from './http-client.js';

/**
 * The `conclave` command: `agent` runs a server; the rest talk to a running agent over its
 * HTTP API, as Consul's CLI does. Flags take one dash or two.
 */

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

function program(): Command {
  const cli = new Command('conclave')
    .description('Conclave: a coordination service speaking the etcd v3 and Consul APIs')
    .version('0.1.0', '--version', 'print the version')
    .showHelpAfterError(false)
    // Commander puts "(Did you mean ...?)" on a second line; keep every usage error on one.
    .configureOutput({ outputError: (str, write) => write(`${str.trim().replace(/\s*\n\s*/g, ' ')}\n`) })
    .exitOverride();

  cli
    .command('agent')
    .description('run an agent (a server, or -dev for a single in-memory server on 127.0.0.1)')
    .option('--dev', 'a single in-memory server, every API on 127.0.0.1')
    .option('--server', 'run as a server')
    .option('--bootstrap', 'bootstrap a one-server cluster')
    .option('--bootstrap-expect <n>', 'bootstrap once this many servers have found each other')
    .option('--node <name>', 'node name (default: host name)')
    .option('--node-id <uuid>', 'node id (default: made once and kept in the data directory)')
    .option('--datacenter <dc>', 'datacenter name', undefined)
    .option('--data-dir <dir>', 'where the server keeps its log and snapshots')
    .option('--bind <addr>', 'address for server-to-server traffic')
    .option('--advertise <addr>', 'address other servers use to reach this one')
    .option('--client <addr>', 'address for the client APIs (HTTP, DNS, etcd)')
    .option('--retry-join <addr>', 'a server to join, host[:port]; repeatable', collect)
    .option('--http-port <port>', 'Consul HTTP API port (8500)')
    .option('--dns-port <port>', 'DNS port (8600)')
    .option('--server-port <port>', 'server RPC port (8300)')
    .option('--serf-lan-port <port>', 'gossip port (8301)')
    .option('--etcd-port <port>', 'etcd v3 API port (2379)')
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .option('--log-json', 'log one JSON object per line')
    .option('--raft-tick-ms <ms>', 'Raft clock tick; elections take 10-20 ticks (100; 10 with -dev)')
    .option('--raft-snapshot-threshold <n>', 'applied entries between snapshots (16384)')
    .option('--raft-trailing-logs <n>', 'log entries kept behind a snapshot (10240)')
    .option('--encrypt <key>', 'gossip encryption key, base64 (16, 24 or 32 bytes; see `conclave keygen`)')
    .option('--config-file <file>', 'a JSON config file with Consul key names; repeatable', collect)
    .action(async (flags: AgentFlags) => runAgent(flags));

  cli
    .command('leave')
    .description('ask the local agent to leave the cluster gracefully and stop')
    .option('--http-addr <addr>', 'agent HTTP address (CONSUL_HTTP_ADDR)')
    .action(async (o: { httpAddr?: string }) => {
      await callAgentOk(agentAddress(o.httpAddr), 'PUT', '/v1/agent/leave');
      console.log('Graceful leave complete');
    });

  cli
    .command('members')
    .description('list the members of the gossip pool as the local agent sees them')
    .option('--http-addr <addr>', 'agent HTTP address (CONSUL_HTTP_ADDR)')
    .option('--detailed', 'show every tag of each member')
    .option('--status <regexp>', 'only members whose status (alive, failed, left) matches')
    .action(async (o: { httpAddr?: string; detailed?: boolean; status?: string }) => {
      const r = await callAgentOk(agentAddress(o.httpAddr), 'GET', '/v1/agent/members');
      printMembers(JSON.parse(r.text) as ConsulMember[], o);
    });

  cli
    .command('join <address...>')
    .description('tell the local agent to join the cluster through these addresses (gossip port 8301)')
    .option('--http-addr <addr>', 'agent HTTP address (CONSUL_HTTP_ADDR)')
    .action(async (addresses: string[], o: { httpAddr?: string }) => {
      const base = agentAddress(o.httpAddr);
      const failures: string[] = [];
      for (const address of addresses) {
        const r = await callAgent(base, 'PUT', `/v1/agent/join/${encodeURI(address)}`);
        if (r.status !== 200) failures.push(r.text.trim() || `${address}: HTTP ${r.status}`);
      }
      const joined = addresses.length - failures.length;
      if (joined === 0) throw new AgentCallError(failures.join('; '));
      for (const failure of failures) process.stderr.write(`Error joining ${failure}\n`);
      console.log(`Successfully joined cluster by contacting ${joined} nodes.`);
    });

  cli
    .command('force-leave <node>')
    .description('mark a failed member as left, so it is removed from the catalog (and Raft, for a server)')
    .option('--http-addr <addr>', 'agent HTTP address (CONSUL_HTTP_ADDR)')
    .action(async (node: string, o: { httpAddr?: string }) => {
      await callAgentOk(agentAddress(o.httpAddr), 'PUT', `/v1/agent/force-leave/${encodeURIComponent(node)}`);
    });

  cli
    .command('keygen')
    .description('print a new random gossip encryption key (32 bytes, base64) for -encrypt')
    .action(() => {
      console.log(randomBytes(32).toString('base64'));
    });

  cli
    .command('keyring')
    .description('list, install, use or remove gossip encryption keys on every member')
    .option('--http-addr <addr>', 'agent HTTP address (CONSUL_HTTP_ADDR)')
    .option('--list', 'list the keys installed on the members')
    .option('--install <key>', 'install a new key on every member')
    .option('--use <key>', 'make an installed key the one that encrypts')
    .option('--remove <key>', 'remove a key that is no longer in use')
    .action(
      async (o: { httpAddr?: string; list?: boolean; install?: string; use?: string; remove?: string }) =>
        runKeyring(agentAddress(o.httpAddr), o),
    );

  const operator = cli.command('operator').description('cluster operator commands');
  const raft = operator.command('raft').description('inspect and change the Raft configuration');
  raft
    .command('list-peers')
    .description('list the servers of the Raft configuration')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--stale', 'answer from this server without asking the leader')
    .action(async (o: { httpAddr?: string; stale?: boolean }) => {
      const r = await callAgentOk(
        agentAddress(o.httpAddr),
        'GET',
        `/v1/operator/raft/configuration${o.stale ? '?stale' : ''}`,
      );
      const config = JSON.parse(r.text) as {
        Servers: {
          ID: string;
          Node: string;
          Address: string;
          Leader: boolean;
          Voter: boolean;
          LastIndex: number;
        }[];
      };
      const rows = [
        ['Node', 'ID', 'Address', 'State', 'Voter', 'RaftProtocol', 'Last Index'],
        ...config.Servers.map((s) => [
          s.Node,
          s.ID,
          s.Address,
          s.Leader ? 'leader' : 'follower',
          String(s.Voter),
          '3',
          String(s.LastIndex),
        ]),
      ];
      printTable(rows);
    });
  raft
    .command('remove-peer')
    .description('remove a server from the Raft configuration')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--id <id>', 'the server id to remove')
    .option('--address <addr>', 'the server address (host:port) to remove')
    .action(async (o: { httpAddr?: string; id?: string; address?: string }) => {
      if (!o.id && !o.address) throw new ConfigError('remove-peer needs -id or -address');
      const q = o.id ? `id=${encodeURIComponent(o.id)}` : `address=${encodeURIComponent(o.address ?? '')}`;
      await callAgentOk(agentAddress(o.httpAddr), 'DELETE', `/v1/operator/raft/peer?${q}`);
      console.log(`Removed peer with ${o.id ? `id "${o.id}"` : `address "${o.address}"`}`);
    });
  raft
    .command('transfer-leader')
    .description('hand Raft leadership to another voter (by default the most up to date)')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--id <id>', 'the server id to become leader')
    .action(async (o: { httpAddr?: string; id?: string }) => {
      const q = o.id ? `?id=${encodeURIComponent(o.id)}` : '';
      await callAgentOk(agentAddress(o.httpAddr), 'POST', `/v1/operator/raft/transfer-leader${q}`);
      console.log('Success');
    });

  const kv = cli.command('kv').description('read and write the key/value store');
  kv.command('get <key>')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--stale', 'read from this server without asking the leader')
    .action(async (key: string, o: { httpAddr?: string; stale?: boolean }) => {
      const r = await callAgent(
        agentAddress(o.httpAddr),
        'GET',
        `/v1/kv/${encodeKey(key)}?raw${o.stale ? '&stale' : ''}`,
      );
      if (r.status === 404) throw new AgentCallError(`No key exists at: ${key}`);
      if (r.status !== 200) throw new AgentCallError(`${r.status}: ${r.text.trim()}`);
      process.stdout.write(`${r.text}\n`);
    });
  kv.command('put <key> [value]')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--flags <n>', 'opaque flags stored with the key')
    .option('--cas', 'write only if the key is unchanged since --modify-index')
    .option('--modify-index <n>', 'the index for --cas')
    .action(
      async (
        key: string,
        value: string | undefined,
        o: { httpAddr?: string; flags?: string; cas?: boolean; modifyIndex?: string },
      ) => {
        const params = new URLSearchParams();
        if (o.flags) params.set('flags', o.flags);
        if (o.cas) params.set('cas', o.modifyIndex ?? '0');
        const qs = params.size > 0 ? `?${params}` : '';
        const r = await callAgentOk(
          agentAddress(o.httpAddr),
          'PUT',
          `/v1/kv/${encodeKey(key)}${qs}`,
          value ?? '',
        );
        if (r.text.trim() !== 'true') throw new AgentCallError(`Failed to write ${key}: CAS did not match`);
        console.log(`Success! Data written to: ${key}`);
      },
    );
  kv.command('delete <key>')
    .option('--http-addr <addr>', 'agent HTTP address')
    .option('--recurse', 'delete every key under the prefix')
    .action(async (key: string, o: { httpAddr?: string; recurse?: boolean }) => {
      await callAgentOk(
        agentAddress(o.httpAddr),
        'DELETE',
        `/v1/kv/${encodeKey(key)}${o.recurse ? '?recurse' : ''}`,
      );
      console.log(`Success! Deleted key${o.recurse ? 's under' : ''}: ${key}`);
    });
  return cli;
}

async function runAgent(flags: AgentFlags): Promise<void> {
  const config = buildConfig(flags);
  const log = createLogger({ level: config.logLevel, json: config.logJson, name: 'agent' });
  // Without -server (or -dev), a client agent: local checks, everything else forwarded to servers.
  const agent = config.server ? new Agent(config, log) : new ClientAgent(config, log);
  let signals = 0;
  const onSignal = (signal: string) => {
    signals++;
    if (signals === 1) {
      log.info('caught signal, leaving gracefully', { signal });
      agent.leave().catch((err: unknown) => {
        log.error('graceful leave failed; stopping', { error: String(err) });
        void agent.shutdown(1);
      });
    } else {
      log.warn('caught a second signal, stopping now', { signal });
      void agent.shutdown(1);
    }
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    await agent.shutdown(1);
    throw err;
  }
  await agent.stopped;
  log.info('agent stopped');
  process.exitCode = agent.exitCode;
  // Stray handles (a peer's half-open socket) must not keep a stopped agent alive.
  setTimeout(() => process.exit(agent.exitCode), 200).unref();
}

interface ConsulMember {
  Name: string;
  Addr: string;
  Port: number;
  Tags: Record<string, string>;
  Status: number;
  ProtocolCur?: number;
}

/** Serf's member status codes as Consul's CLI names them. */
const MEMBER_STATUS: Record<number, string> = { 0: 'none', 1: 'alive', 2: 'leaving', 3: 'left', 4: 'failed' };

/** `consul members`: one row per member, sorted by name; -detailed shows the tags instead. */
function printMembers(members: ConsulMember[], o: { detailed?: boolean; status?: string }): void {
  let filter: RegExp | null = null;
  if (o.status !== undefined) {
    try {
      filter = new RegExp(o.status);
    } catch (err) {
      throw new ConfigError(`-status must be a regular expression: ${(err as Error).message}`);
    }
  }
  const shown = members
    .map((m) => ({ m, status: MEMBER_STATUS[m.Status] ?? 'unknown' }))
    .filter(({ status }) => filter === null || filter.test(status))
    .sort((a, b) => a.m.Name.localeCompare(b.m.Name));
  const address = (m: ConsulMember) => `${m.Addr.includes(':') ? `[${m.Addr}]` : m.Addr}:${m.Port}`;
  const rows = o.detailed
    ? [
        ['Node', 'Address', 'Status', 'Tags'],
        ...shown.map(({ m, status }) => [
          m.Name,
          address(m),
          status,
          Object.keys(m.Tags)
            .sort()
            .map((k) => `${k}=${m.Tags[k]}`)
            .join(','),
        ]),
      ]
    : [
        ['Node', 'Address', 'Status', 'Type', 'Build', 'Protocol', 'DC'],
        ...shown.map(({ m, status }) => [
          m.Name,
          address(m),
          status,
          m.Tags.role === 'consul' ? 'server' : 'client',
          m.Tags.build ?? '',
          m.Tags.vsn ?? String(m.ProtocolCur ?? ''),
          m.Tags.dc ?? '',
        ]),
      ];
  printTable(rows);
}

/** `consul keyring`: exactly one of -list, -install, -use, -remove, against /v1/operator/keyring. */
async function runKeyring(
  base: string,
  o: { list?: boolean; install?: string; use?: string; remove?: string },
): Promise<void> {
  const actions = [o.list, o.install, o.use, o.remove].filter((a) => a !== undefined).length;
  if (actions !== 1) throw new ConfigError('keyring needs exactly one of -list, -install, -use or -remove');
  if (o.list) {
    console.log('==> Gathering installed encryption keys...');
    const r = await callAgentOk(base, 'GET', '/v1/operator/keyring');
    const pools = JSON.parse(r.text) as {
      WAN: boolean;
      Datacenter: string;
      Keys: Record<string, number>;
      PrimaryKeys?: Record<string, number>;
      NumNodes: number;
    }[];
    for (const pool of pools) {
      console.log(`\n${pool.Datacenter} (${pool.WAN ? 'WAN' : 'LAN'}):`);
      for (const [key, count] of Object.entries(pool.Keys).sort(
        (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
      ))
        console.log(`  ${key} [${count}/${pool.NumNodes}]`);
      for (const [key, count] of Object.entries(pool.PrimaryKeys ?? {}))
        console.log(`  primary: ${key} [${count}/${pool.NumNodes}]`);
    }
    return;
  }
  const [method, key, doing, done] =
    o.install !== undefined
      ? ['POST', o.install, 'Installing new gossip encryption key', 'installed key']
      : o.use !== undefined
        ? ['PUT', o.use, 'Changing primary gossip encryption key', 'changed primary key']
        : ['DELETE', o.remove ?? '', 'Removing gossip encryption key', 'removed key'];
  console.log(`==> ${doing}...`);
  await callAgentOk(base, method, '/v1/operator/keyring', JSON.stringify({ Key: key }));
  console.log(`==> Successfully ${done}!`);
}

function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  for (const r of rows)
    console.log(
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await program().parseAsync(normalizeArgv(argv), { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed its one-line message (or help/version, with code 0).
      return err.exitCode === 0 ? 0 : 1;
    }
    const known = err instanceof ConfigError || err instanceof AgentCallError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`Error: ${message}\n`);
    if (!known && process.env.CONCLAVE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}

// Run when executed directly (`tsx src/cli/main.ts`); bin/conclave.mjs calls main() itself.
// Run directly: `tsx src/cli/main.ts ...`, or the compiled `node dist/src/cli/main.js ...` (npm run build).
if (/[\\/]src[\\/]cli[\\/]main\.[jt]s$/.test(process.argv[1] ?? '')) {
  main(process.argv.slice(2)).then((code) => {
    if (code !== 0) process.exit(code);
  });
}
