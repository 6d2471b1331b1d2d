// One notebook's room state (role, foreign lock, connection, saved) and REAL read-only.
//
// JupyterLab's "read-only" is a label; here a viewer's or a foreign-locked notebook gets
// read-only cell editors, no drop target, and its editing commands disabled (readonly.ts). The
// hub writes the lock holder (``locked_by``), ``dirty`` and ``saved_at`` into the document's
// state map, so the state arrives with the document itself, live, with no reload.
import { NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { api } from './api';
import { roomSockets, IRoomEvent } from './roomsockets';

export type Role = 'editor' | 'viewer';

export interface IRoomState {
  role: Role;
  /** "app (user)" of a foreign lock, '' when none */
  lockedBy: string;
  /** null until the room socket was seen */
  connected: boolean | null;
  dirty: boolean;
  /** seconds since the epoch of the hub's last write to storage */
  savedAt: number | null;
}

const DROP_EVENTS = ['lm-dragenter', 'lm-dragover', 'lm-drop'];

export class RoomGuard implements IDisposable {
  constructor(readonly panel: NotebookPanel) {
    this._state = { role: 'editor', lockedBy: '', connected: null, dirty: false, savedAt: null };
    const { context } = panel;
    context.fileChanged.connect(this._readRole, this);
    roomSockets.events.connect(this._onSocket, this);
    for (const name of DROP_EVENTS) {
      panel.node.addEventListener(name, this._blockDrop, true);
    }
    void context.ready.then(() => {
      if (this._disposed) {
        return;
      }
      this._readRole();
      this._readShared();
      context.model.sharedModel.changed.connect(this._readShared, this);
      panel.content.model?.cells.changed.connect(this._apply, this);
      this._apply();
    });
    void api.info(context.path).then(
      info => {
        this._fileId = info.file_id;
        this._update({ connected: roomSockets.connected(info.file_id) ?? true });
      },
      (error: unknown) => console.debug('cs3collab: no file info for the room status', error)
    );
  }

  get state(): IRoomState {
    return this._state;
  }

  /** the hub's fileId of this notebook, once known */
  get fileId(): string | null {
    return this._fileId;
  }

  get readOnly(): boolean {
    return this._state.role === 'viewer' || this._state.lockedBy !== '';
  }

  /** Emits the previous state on every change. */
  get changed(): ISignal<this, IRoomState> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    for (const name of DROP_EVENTS) {
      this.panel.node.removeEventListener(name, this._blockDrop, true);
    }
    roomSockets.events.disconnect(this._onSocket, this);
    Signal.clearData(this);
  }

  private _readRole(): void {
    const writable = this.panel.context.contentsModel?.writable;
    this._update({ role: writable === false ? 'viewer' : 'editor' });
  }

  private _readShared(): void {
    const shared = this.panel.context.model.sharedModel;
    const lockedBy = shared.getState('locked_by');
    const savedAt = shared.getState('saved_at');
    this._update({
      lockedBy: typeof lockedBy === 'string' ? lockedBy : '',
      dirty: shared.getState('dirty') === true,
      savedAt: typeof savedAt === 'number' ? savedAt : this._state.savedAt
    });
  }

  private _onSocket(_: unknown, event: IRoomEvent): void {
    if (event.fileId !== this._fileId || event.kind === 'message') {
      return;
    }
    this._update({ connected: roomSockets.connected(event.fileId) ?? true });
  }

  private _update(change: Partial<IRoomState>): void {
    const previous = this._state;
    const next = { ...previous, ...change };
    if (Object.keys(next).every(k => next[k as keyof IRoomState] === previous[k as keyof IRoomState])) {
      return;
    }
    this._state = next;
    this._apply();
    this._changed.emit(previous);
  }

  /** Cells, editors and the model follow ``readOnly`` (also cells added later). */
  private _apply(): void {
    const readOnly = this.readOnly;
    const { panel } = this;
    panel.node.classList.toggle('cs3-read-only', readOnly);
    if (!panel.context.isReady) {
      return;
    }
    panel.context.model.readOnly = readOnly;
    for (const cell of panel.content.widgets) {
      cell.readOnly = readOnly;
    }
    if (readOnly && panel.content.mode === 'edit') {
      panel.content.mode = 'command';
    }
  }

  private _blockDrop = (event: Event): void => {
    if (this.readOnly) {
      // captured on the panel before the notebook sees it: no cell is moved or dropped in
      event.preventDefault();
      event.stopPropagation();
      (event as Event & { dropAction?: string }).dropAction = 'none';
    }
  };

  private _state: IRoomState;
  private _changed = new Signal<this, IRoomState>(this);
  private _fileId: string | null = null;
  private _disposed = false;
}
