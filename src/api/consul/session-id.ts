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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Any well-formed UUID, as Consul's session endpoints accept (hashicorp/go-uuid's ParseUUID). */
export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/**
 * Store ids for the sessions a request names. A UUID this server issued maps to its lease id;
 * any other well-formed UUID is a session that does not exist, and gets a negative id (never a
 * lease id), one per distinct text, so the store fails it as an unknown session and its error
 * can be named by the UUID the client sent. Text that is not a UUID is null.
 */
export class SessionNames {
  private readonly foreign = new Map<string, number>();
  private readonly foreignText = new Map<number, string>();

  id(text: string): number | null {
    const own = parseSessionId(text);
    if (own !== null) return own;
    if (!isUuid(text)) return null;
    const key = text.toLowerCase();
    let id = this.foreign.get(key);
    if (id === undefined) {
      id = -(this.foreign.size + 1);
      this.foreign.set(key, id);
      this.foreignText.set(id, text);
    }
    return id;
  }

  /** The UUID for a store id: the client's text for a foreign one. */
  name(id: number): string {
    return id < 0 ? (this.foreignText.get(id) ?? formatSessionId(0)) : formatSessionId(id);
  }
}
