import { type AgentConfig, ConfigError } from '../config.js';
import type { LocalState } from './local-state.js';

/**
 * Services and checks from config files, loaded at startup. A bad one is a one-line error,
 * as a bad flag is (the local state is stopped first, so no check keeps running).
 */
export function loadDefinitions(local: LocalState, config: AgentConfig): void {
  for (const [kind, list] of [
    ['service', config.serviceDefinitions],
    ['check', config.checkDefinitions],
  ] as const) {
    for (const def of list) {
      try {
        if (kind === 'service') local.addService(def, 'config');
        else local.addCheck(def, 'config');
      } catch (err) {
        local.stop();
        throw new ConfigError(`config file: ${kind} ${JSON.stringify(def)}: ${(err as Error).message}`);
      }
    }
  }
}
