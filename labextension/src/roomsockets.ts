// Which collaboration room sockets are open, and the hub's raw messages on them.
//
// @jupyter/docprovider keeps its websocket provider private, and stock JupyterLab ignores the
// hub's raw messages (type 2: lock, conflict_copy, external_change). Rather than open a second
// socket per document, this observes the provider's own socket: WebSocket is wrapped once so
// that sockets to /api/collaboration/room/<format>:<type>:<fileId> are registered by fileId and
// listened to (passively: nothing is sent or changed on them).
import { ISignal, Signal } from '@lumino/signaling';

export interface IRoomEvent {
  fileId: string;
  kind: 'open' | 'close' | 'message';
  /** the hub's raw JSON message (kind 'message') */
  message?: Record<string, unknown>;
  code?: number;
}

const ROOM = /\/api\/collaboration\/room\/[^:/]+:[^:/]+:([^/?#]+)/;

class RoomSockets {
  private _events = new Signal<this, IRoomEvent>(this);
  private _open = new Map<string, number>();

  get events(): ISignal<this, IRoomEvent> {
    return this._events;
  }

  /** Whether a room socket for ``fileId`` is open now (null: none was ever seen). */
  connected(fileId: string): boolean | null {
    const count = this._open.get(fileId);
    return count === undefined ? null : count > 0;
  }

  /** Wrap the WebSocket class JupyterLab's server settings hand to the docprovider (it takes
   * ``serverSettings.WebSocket``, captured at start-up, not the global). */
  install(settings: { WebSocket: typeof WebSocket }): void {
    const Native = settings.WebSocket;
    if ((Native as unknown as { cs3Observed?: boolean }).cs3Observed) {
      return;
    }
    const observe = (socket: WebSocket, fileId: string) => this._observe(socket, fileId);
    class ObservedWebSocket extends Native {
      static cs3Observed = true;
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        const match = ROOM.exec(String(url));
        if (match) {
          observe(this, decodeURIComponent(match[1]));
        }
      }
    }
    // not frozen: the one settings object the service manager and the drive share
    (settings as { WebSocket: typeof WebSocket }).WebSocket = ObservedWebSocket;
  }

  private _observe(socket: WebSocket, fileId: string): void {
    if (!this._open.has(fileId)) {
      this._open.set(fileId, 0);
    }
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
      this._open.set(fileId, (this._open.get(fileId) ?? 0) + 1);
      this._events.emit({ fileId, kind: 'open' });
    });
    socket.addEventListener('close', event => {
      if (opened) {
        this._open.set(fileId, Math.max(0, (this._open.get(fileId) ?? 1) - 1));
      }
      this._events.emit({ fileId, kind: 'close', code: event.code });
    });
    socket.addEventListener('message', event => {
      const message = rawMessage(event.data);
      if (message) {
        this._events.emit({ fileId, kind: 'message', message });
      }
    });
  }
}

/** A raw (type 2) JSON message: lib0 var-uint length + UTF-8 text. */
function rawMessage(data: unknown): Record<string, unknown> | null {
  if (!(data instanceof ArrayBuffer)) {
    return null;
  }
  const bytes = new Uint8Array(data);
  if (bytes.length < 3 || bytes[0] !== 2) {
    return null;
  }
  let length = 0;
  let shift = 0;
  let i = 1;
  while (i < bytes.length) {
    const b = bytes[i++];
    length += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) {
      break;
    }
  }
  if (bytes[i] !== 0x7b) {
    return null; // not '{': e.g. the save reply's plain string form
  }
  try {
    const parsed: unknown = JSON.parse(new TextDecoder().decode(bytes.subarray(i, i + length)));
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export const roomSockets = new RoomSockets();
