import { Agent } from '../../src/agent/agent.js';
import { type AgentFlags, buildConfig } from '../../src/agent/config.js';
import { silentLogger } from '../../src/server/logger.js';

/** Every port an agent binds, picked free by the OS, so tests never collide. */
export const EPHEMERAL_PORTS: AgentFlags = {
  httpPort: '0',
  serverPort: '0',
  etcdPort: '0',
  dnsPort: '0',
  serfLanPort: '0',
};

/** An agent in this process (a -dev one unless the flags say otherwise), started; its HTTP base URL. */
export async function startInProcessAgent(flags: AgentFlags): Promise<{ agent: Agent; base: string }> {
  const agent = new Agent(buildConfig({ dev: true, ...EPHEMERAL_PORTS, ...flags }), silentLogger);
  await agent.start();
  return { agent, base: `http://127.0.0.1:${agent.httpPort}` };
}
