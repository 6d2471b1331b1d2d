// The room status in the notebook toolbar: editing live / view only / locked by ⟨app (user)⟩ /
// reconnecting, and saved or unsaved to storage with the time.
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { RoomGuard } from './roomguard';

export class RoomStatus extends Widget {
  constructor(
    private readonly _guard: RoomGuard,
    private readonly _trans: TranslationBundle
  ) {
    super();
    this.addClass('cs3-room-status');
    this._mode = document.createElement('span');
    this._mode.className = 'cs3-room-mode';
    this._saved = document.createElement('span');
    this._saved.className = 'cs3-room-saved';
    this.node.append(this._mode, this._saved);
    _guard.changed.connect(this._render, this);
    this._render();
  }

  private _render(): void {
    const { state } = this._guard;
    const trans = this._trans;
    let mode: string;
    let text: string;
    if (state.connected === false) {
      [mode, text] = ['reconnecting', trans.__('Reconnecting…')];
    } else if (state.lockedBy) {
      [mode, text] = ['locked', trans.__('Locked by %1', state.lockedBy)];
    } else if (state.role === 'viewer') {
      [mode, text] = ['view-only', trans.__('View only')];
    } else {
      [mode, text] = ['live', trans.__('Editing live')];
    }
    this.node.dataset.mode = mode;
    this._mode.textContent = text;
    const time = state.savedAt
      ? new Date(state.savedAt * 1000).toLocaleTimeString([], { hour12: false })
      : null;
    this._saved.dataset.saved = state.dirty ? 'unsaved' : 'saved';
    this._saved.textContent = state.dirty
      ? time
        ? trans.__('Unsaved changes (saved %1)', time)
        : trans.__('Unsaved changes')
      : time
        ? trans.__('Saved %1', time)
        : trans.__('Saved');
    this.node.title = `${text} · ${this._saved.textContent}`;
  }

  private _mode: HTMLSpanElement;
  private _saved: HTMLSpanElement;
}
