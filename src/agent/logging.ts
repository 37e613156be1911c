import pino from 'pino';
import type { LogFields, Logger } from '../server/logger.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];

/**
 * The agent's log: pino underneath; with `json` one JSON object per line (-log-json), otherwise
 * Consul-style text lines (`2026-01-02T03:04:05.678Z [INFO]  agent: message: key=value`).
 */
export function createLogger(options: { level: LogLevel; json: boolean; name?: string }): Logger {
  const destination = options.json ? pino.destination({ fd: 1, sync: true }) : { write: writeText };
  const p = pino(
    {
      level: options.level,
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      messageKey: 'msg',
    },
    destination,
  );
  const named = options.name ? p.child({ name: options.name }) : p;
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (message: string, fields?: LogFields): void =>
      fields ? named[level](fields, message) : named[level](message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function writeText(line: string): void {
  const { time, level, name, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
  const tag = `[${String(level).toUpperCase()}]`.padEnd(8);
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`)
    .join(' ');
  process.stdout.write(
    `${String(time)} ${tag}${name ? `${String(name)}: ` : ''}${String(msg)}${fields ? `: ${fields}` : ''}\n`,
  );
}
