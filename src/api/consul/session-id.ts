/**
 * Consul names sessions by UUID; the store numbers them (a session is a lease). The id is laid
 * out in the UUID's last 13 hex digits, so the mapping is total, reversible and needs no table.
 */
const PREFIX = '00000000-0000-4000-8';

export function formatSessionId(id: number): string {
  const hex = id.toString(16).padStart(15, '0');
  return `${PREFIX}${hex.slice(0, 3)}-${hex.slice(3)}`;
}

/** null when the text is not a session id this server could have issued. */
export function parseSessionId(text: string): number | null {
  const m = /^00000000-0000-4000-8([0-9a-f]{3})-([0-9a-f]{12})$/i.exec(text);
  if (!m) return null;
  const id = Number.parseInt(`${m[1]}${m[2]}`, 16);
  return Number.isSafeInteger(id) && id > 0 ? id : null;
}
