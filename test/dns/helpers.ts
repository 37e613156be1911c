/** DNS test helpers: a store with catalog entries, config, and real UDP/TCP queries encoded with dns-packet. */
import dgram from 'node:dgram';
import net from 'node:net';
import * as packet from 'dns-packet';
import type { DnsConfig } from '../../src/agent/config.js';
import type { DnsSource } from '../../src/api/dns/resolve.js';
import type { CheckInput, ServiceInput } from '../../src/store/catalog.js';
import type { HealthStatus } from '../../src/store/types.js';
import { Harness } from '../store/helpers.js';

export function dnsConfig(overrides: Partial<DnsConfig> = {}): DnsConfig {
  return {
    nodeTtlS: 0,
    serviceTtlS: {},
    onlyPassing: false,
    enableTruncate: false,
    udpAnswerLimit: 3,
    aRecordLimit: 0,
    allowStale: true,
    ...overrides,
  };
}

/** A store whose catalog tests fill through the same commands the servers apply. */
export class CatalogFixture {
  readonly harness = new Harness();
  servers: string[] = [];

  get store() {
    return this.harness.store;
  }

  source(): DnsSource {
    const fixture = this;
    return {
      get catalog() {
        return fixture.store.catalog;
      },
      serverNames: () => fixture.servers,
    };
  }

  node(node: string, address: string, meta: Record<string, string> = {}): this {
    this.harness.ok({ type: 'catalogRegister', node: { node, address, meta } });
    return this;
  }

  /** A service instance on `node` with one service check of the given status. */
  service(
    node: string,
    address: string,
    service: Partial<ServiceInput> & { id: string; service: string },
    status: HealthStatus | null = 'passing',
  ): this {
    const checks: CheckInput[] =
      status === null ? [] : [{ checkId: `check-${service.id}`, serviceId: service.id, status }];
    this.harness.ok({ type: 'catalogRegister', node: { node, address }, service, checks });
    return this;
  }

  nodeCheck(node: string, checkId: string, status: HealthStatus): this {
    const address = this.store.catalog.nodes.get(node)?.address ?? '';
    this.harness.ok({ type: 'catalogRegister', node: { node, address }, checks: [{ checkId, status }] });
    return this;
  }

  setCheck(node: string, checkId: string, status: HealthStatus): this {
    this.harness.ok({ type: 'checkUpdate', node, checkId, status });
    return this;
  }
}

let nextId = 1;

export function query(
  name: string,
  type: packet.RecordType | 'ANY',
  options: { edns?: number; id?: number } = {},
): Buffer {
  const message: packet.Packet = {
    type: 'query',
    id: options.id ?? nextId++ & 0xffff,
    flags: packet.RECURSION_DESIRED,
    // dns-packet encodes ANY (255) though its types leave it out.
    questions: [{ name, type: type as packet.RecordType, class: 'IN' }],
  };
  if (options.edns !== undefined) {
    message.additionals = [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: options.edns,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ];
  }
  return packet.encode(message);
}

export type Response = packet.DecodedPacket & { rcode: string };

export function decode(bytes: Buffer): Response {
  return packet.decode(bytes) as Response;
}

/** Sends one datagram and waits (bounded) for one answer. */
export function udpExchange(port: number, message: Buffer, timeoutMs = 2000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no UDP answer'));
    }, timeoutMs);
    socket.once('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

/** Sends length-prefixed messages on one TCP connection and reads as many answers. */
export function tcpExchange(port: number, messages: Buffer[], timeoutMs = 2000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const answers: Buffer[] = [];
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`TCP: ${answers.length} of ${messages.length} answers`));
    }, timeoutMs);
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('connect', () => {
      for (const message of messages) {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(message.length);
        socket.write(Buffer.concat([length, message]));
      }
    });
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        answers.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      if (answers.length === messages.length) {
        clearTimeout(timer);
        socket.end();
        resolve(answers);
      }
    });
  });
}
