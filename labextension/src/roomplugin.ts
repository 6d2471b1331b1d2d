// @cs3collab/lab:rooms: what the hub does to an open notebook, shown to the person using it.
// Room status in the toolbar, real read-only, the "modified by another person" dialog, work
// copies and their merge, and notifications of external changes and conflict copies.
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  IToolbarWidgetRegistry,
  ICommandPalette,
  Notification,
  showDialog,
  ToolbarButton
} from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';

import { showLockDialog } from './lockdialog';
import { mergeCopy } from './mergedialog';
import { guardCommands } from './readonly';
import { RoomGuard } from './roomguard';
import { IRoomEvent, roomSockets } from './roomsockets';
import { changesDialog } from './changesdialog';
import { RoomStatus } from './statuswidget';

const COPY_NAME = /\.conflict(-\d+)?(\.[^./]+)?$/;

export const RoomCommandIDs = {
  mergeCopy: 'cs3collab:merge-copy'
} as const;

/** The contents path of a storage path the hub named (null: not visible from this server). */
async function contentsPath(storagePath: string): Promise<string | null> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, 'api/cs3/path') +
    '?' +
    new URLSearchParams({ storage_path: storagePath });
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    return null;
  }
  const data = (await response.json()) as { path: string | null };
  return data.path;
}

class Rooms {
  constructor(
    private readonly _app: JupyterFrontEnd,
    private readonly _tracker: INotebookTracker,
    private readonly _trans: TranslationBundle
  ) {
    roomSockets.events.connect(this._onRoomEvent, this);
  }

  guard(panel: NotebookPanel): RoomGuard {
    let guard = this._guards.get(panel);
    if (!guard) {
      const created = new RoomGuard(panel);
      guard = created;
      this._guards.set(panel, created);
      panel.disposed.connect(() => {
        created.dispose();
        this._guards.delete(panel);
      });
      created.changed.connect((_, previous) => this._onChange(created, previous.lockedBy));
      void panel.context.ready.then(() => this._onChange(created, ''));
    }
    return guard;
  }

  currentIsReadOnly(): boolean {
    const panel = this._tracker.currentWidget;
    return panel ? this.guard(panel).readOnly : false;
  }

  openBeside(path: string, ref: NotebookPanel): Promise<void> {
    return this._app.commands
      .execute('docmanager:open', { path, options: { mode: 'split-right', ref: ref.id } })
      .then(() => undefined);
  }

  /** A foreign lock appeared (or was there at open): the dialog, once per lock. */
  private _onChange(guard: RoomGuard, previousHolder: string): void {
    const { lockedBy, role } = guard.state;
    if (!lockedBy || lockedBy === previousHolder || role === 'viewer' || this._asked.has(guard)) {
      if (!lockedBy) {
        this._asked.delete(guard);
      }
      return;
    }
    this._asked.add(guard);
    const panel = guard.panel;
    console.info(`cs3collab: ${panel.context.path} locked by ${lockedBy} at ${performance.now()}`);
    void showLockDialog({
      path: panel.context.path,
      holder: lockedBy,
      trans: this._trans,
      openBeside: path => this.openBeside(path, panel)
    });
  }

  private _panelFor(fileId: string): NotebookPanel | null {
    let found: NotebookPanel | null = null;
    this._tracker.forEach(panel => {
      if (!found && this._guards.get(panel)?.fileId === fileId) {
        found = panel;
      }
    });
    return found;
  }

  private _onRoomEvent(_: unknown, event: IRoomEvent): void {
    const message = event.message;
    if (event.kind !== 'message' || !message) {
      return;
    }
    const panel = this._panelFor(event.fileId);
    const name = panel?.context.path ?? this._trans.__('an open notebook');
    const trans = this._trans;
    if (message.type === 'deleted') {
      // the hub closes the room's sockets next: close the tab rather than let it reconnect
      const who = String(message.by || trans.__('someone'));
      const panels: NotebookPanel[] = [];
      this._tracker.forEach(p => {
        if (this._guards.get(p)?.fileId === event.fileId) {
          panels.push(p);
        }
      });
      for (const p of panels) {
        p.dispose();
      }
      void showDialog({
        title: trans.__('Notebook deleted'),
        body: trans.__('%1 was deleted by %2. Its tab is closed.', name, who),
        buttons: [Dialog.okButton()]
      });
      return;
    }
    if (message.type === 'external_change') {
      const who = String(message.who || trans.__('another application'));
      const changes = Array.isArray(message.changes) ? message.changes : [];
      Notification.info(trans.__('%1 changed %2; the change is merged into your view.', who, name), {
        autoClose: 10000,
        actions: [
          {
            label: trans.__('Show changes'),
            callback: () => void changesDialog(name, who, changes, trans)
          }
        ]
      });
    } else if (message.type === 'conflict_copy') {
      const storagePath = typeof message.path === 'string' ? message.path : null;
      if (!storagePath) {
        Notification.warning(String(message.message ?? trans.__('Another version was kept as a copy.')));
        return;
      }
      void contentsPath(storagePath).then(path => {
        if (!path) {
          Notification.warning(trans.__('Another version of %1 was kept as a copy you cannot open here.', name));
          return;
        }
        Notification.warning(
          trans.__('Not every change of another version of %1 could be merged; it is kept as %2.', name, path),
          {
            autoClose: false,
            actions: [
              { label: trans.__('Open copy'), callback: () => void this._app.commands.execute('docmanager:open', { path }) },
              {
                label: trans.__('Compare'),
                callback: () => void (panel ? this.openBeside(path, panel) : undefined)
              }
            ]
          }
        );
      });
    }
  }

  private _guards = new Map<NotebookPanel, RoomGuard>();
  private _asked = new Set<RoomGuard>();
}

export const roomsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@cs3collab/lab:rooms',
  description: 'Room status, real read-only, locks, work copies and merges, external changes',
  autoStart: true,
  requires: [INotebookTracker, IEditorServices],
  optional: [ITranslator, IToolbarWidgetRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    editorServices: IEditorServices,
    translator: ITranslator | null,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    palette: ICommandPalette | null
  ) => {
    // before any document opens: the docprovider creates its sockets when one does
    roomSockets.install(app.serviceManager.serverSettings);
    const trans = (translator ?? nullTranslator).load('jupyterlab');
    const rooms = new Rooms(app, tracker, trans);
    tracker.widgetAdded.connect((_, panel) => void rooms.guard(panel));
    guardCommands(app.commands, () => rooms.currentIsReadOnly());

    const isCopy = (panel: NotebookPanel | null) =>
      panel !== null && COPY_NAME.test(panel.context.path.replace(/\.ipynb$/, ''));
    app.commands.addCommand(RoomCommandIDs.mergeCopy, {
      label: trans.__('Merge Copy into Original…'),
      caption: trans.__('Merge this work copy back into the notebook it was copied from'),
      isEnabled: () => isCopy(tracker.currentWidget),
      execute: async args => {
        const path = typeof args.path === 'string' ? args.path : tracker.currentWidget?.context.path;
        if (!path) {
          return;
        }
        const result = await mergeCopy(path, editorServices, trans);
        if (result?.status === 'failed') {
          await showDialog({
            title: trans.__('Not merged'),
            body: result.message ?? '',
            buttons: [Dialog.okButton()]
          });
        }
      }
    });
    if (palette) {
      palette.addItem({ command: RoomCommandIDs.mergeCopy, category: trans.__('CS3') });
    }
    if (toolbarRegistry) {
      toolbarRegistry.addFactory<NotebookPanel>(
        'Notebook',
        'cs3-room-status',
        panel => new RoomStatus(rooms.guard(panel), trans)
      );
      toolbarRegistry.addFactory<NotebookPanel>('Notebook', 'cs3-merge-copy', panel => {
        const button = new ToolbarButton({
          label: trans.__('Merge into original'),
          tooltip: trans.__('Merge this work copy back into the notebook it was copied from'),
          className: 'cs3-toolbar-merge',
          onClick: () =>
            void app.commands.execute(RoomCommandIDs.mergeCopy, { path: panel.context.path })
        });
        const show = () => button.setHidden(!isCopy(panel));
        panel.context.pathChanged.connect(show);
        show();
        return button;
      });
    }
  }
};
