// @cs3collab/lab: share CS3 files, accept shares, find people and inspect files in JupyterLab.
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  IToolbarWidgetRegistry,
  showDialog,
  ToolbarButton
} from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { IUserMenu } from '@jupyter/collaboration';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { api, IMe } from './api';
import { openInfoDialog } from './infodialog';
import { roomsPlugin } from './roomplugin';
import { openShareDialog } from './sharedialog';
import { SharesPanel } from './sharespanel';

const PLUGIN_ID = '@cs3collab/lab:plugin';

export const CommandIDs = {
  share: 'cs3collab:share',
  shareCurrent: 'cs3collab:share-current',
  info: 'cs3collab:file-info',
  infoCurrent: 'cs3collab:file-info-current',
  openShares: 'cs3collab:open-shares',
  account: 'cs3collab:account',
  // jupyter-collaboration's "Generate a Shared Link" (server URL + token) is disabled
  // (package.json disabledExtensions); its top-bar button now opens our Share dialog.
  sharedLink: 'collaboration:shared-link'
} as const;

export const shareIcon = new LabIcon({
  name: 'cs3collab:share',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M18 16.1c-.8 0-1.5.3-2 .8l-7.1-4.2c.1-.2.1-.5.1-.7s0-.5-.1-.7' +
    'L16 7.2c.5.5 1.2.8 2 .8 1.7 0 3-1.3 3-3s-1.3-3-3-3-3 1.3-3 3c0 .2 0 .5.1.7L8 9.8C7.5 9.3 6.8 9 6 9' +
    'c-1.7 0-3 1.3-3 3s1.3 3 3 3c.8 0 1.5-.3 2-.8l7.1 4.2c-.1.2-.1.4-.1.6 0 1.6 1.3 2.9 2.9 2.9s2.9-1.3' +
    ' 2.9-2.9-1.2-2.9-2.8-2.9z"/></svg>'
});

function currentPath(app: JupyterFrontEnd, docManager: IDocumentManager | null): string | null {
  const widget = app.shell.currentWidget;
  if (!widget || !docManager) {
    return null;
  }
  const context = docManager.contextForWidget(widget);
  return context ? context.path : null;
}

function selectedPath(browser: IDefaultFileBrowser | null): string | null {
  if (!browser) {
    return null;
  }
  const first = browser.selectedItems().next();
  return first.done ? null : first.value.path;
}

function accountBody(me: IMe, trans: ReturnType<ITranslator['load']>): Widget {
  const body = new Widget();
  body.addClass('cs3-account');
  const rows: [string, string][] = [
    [trans.__('Name'), me.display_name || '—'],
    [trans.__('Username'), me.username || '—'],
    [trans.__('Mail'), me.mail || '—'],
    [trans.__('Identity provider'), me.idp || '—'],
    [trans.__('Storage'), me.storage === 'cs3' ? 'CS3' : trans.__('local folder')]
  ];
  const table = document.createElement('table');
  table.className = 'cs3-info-table';
  for (const [label, value] of rows) {
    const tr = table.insertRow();
    const th = document.createElement('th');
    th.textContent = label;
    tr.appendChild(th);
    tr.insertCell().textContent = value;
  }
  body.node.appendChild(table);
  return body;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Share CS3 files, accept shares, find people and inspect files',
  autoStart: true,
  requires: [ITranslator],
  optional: [
    ILayoutRestorer,
    ILabShell,
    IDefaultFileBrowser,
    IDocumentManager,
    ICommandPalette,
    IToolbarWidgetRegistry,
    IUserMenu
  ],
  activate: (
    app: JupyterFrontEnd,
    translator: ITranslator | null,
    restorer: ILayoutRestorer | null,
    labShell: ILabShell | null,
    browser: IDefaultFileBrowser | null,
    docManager: IDocumentManager | null,
    palette: ICommandPalette | null,
    toolbarRegistry: IToolbarWidgetRegistry | null,
    userMenu: IUserMenu | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyterlab');
    const { commands } = app;
    let me: IMe | null = null;
    const meLoaded = api.me().then(
      value => {
        me = value;
        commands.notifyCommandChanged();
        return value;
      },
      (error: unknown) => {
        console.warn('cs3collab: could not load the CS3 user', error);
        return null;
      }
    );
    const sharing = () => me === null || me.sharing;

    const panel = new SharesPanel(trans, {
      open: path => void commands.execute('docmanager:open', { path }),
      reveal: path => void commands.execute('filebrowser:go-to-path', { path })
    });
    panel.title.icon = shareIcon;
    app.shell.add(panel, 'left', { rank: 300 });
    if (restorer) {
      restorer.add(panel, 'cs3collab-shares');
    }
    const changed = () => panel.refresh();

    commands.addCommand(CommandIDs.share, {
      label: trans.__('Share…'),
      caption: trans.__('Share with a person'),
      icon: shareIcon,
      isVisible: () => sharing() && selectedPath(browser) !== null,
      execute: () => {
        const path = selectedPath(browser);
        return path === null ? undefined : openShareDialog(path, trans, changed);
      }
    });
    commands.addCommand(CommandIDs.shareCurrent, {
      label: trans.__('Share Current Document…'),
      caption: trans.__('Share the current document with a person'),
      icon: shareIcon,
      isEnabled: () => sharing() && currentPath(app, docManager) !== null,
      execute: args => {
        const path = typeof args.path === 'string' ? args.path : currentPath(app, docManager);
        return path === null ? undefined : openShareDialog(path, trans, changed);
      }
    });
    commands.addCommand(CommandIDs.sharedLink, {
      label: trans.__('Share with a Person…'),
      caption: trans.__('Share the current document with a person'),
      icon: shareIcon,
      isEnabled: () => sharing(),
      execute: async () => {
        const path = currentPath(app, docManager) ?? selectedPath(browser);
        if (path === null) {
          await showDialog({
            title: trans.__('Share with a Person'),
            body: trans.__('Open a document, or select a file in the file browser, to share it.'),
            buttons: [Dialog.okButton()]
          });
          return;
        }
        await openShareDialog(path, trans, changed);
      }
    });
    commands.addCommand(CommandIDs.info, {
      label: trans.__('File Info'),
      isVisible: () => selectedPath(browser) !== null,
      execute: () => {
        const path = selectedPath(browser);
        return path === null ? undefined : openInfoDialog(path, trans);
      }
    });
    commands.addCommand(CommandIDs.infoCurrent, {
      label: trans.__('Current Document Info'),
      isEnabled: () => currentPath(app, docManager) !== null,
      execute: args => {
        const path = typeof args.path === 'string' ? args.path : currentPath(app, docManager);
        return path === null ? undefined : openInfoDialog(path, trans);
      }
    });
    commands.addCommand(CommandIDs.openShares, {
      label: trans.__('Show Shares'),
      execute: () => {
        if (labShell) {
          labShell.activateById(panel.id);
        } else {
          app.shell.activateById(panel.id);
        }
      }
    });
    commands.addCommand(CommandIDs.account, {
      label: () => (me ? trans.__('CS3 Account: %1', me.display_name || me.username) : trans.__('CS3 Account')),
      execute: async () => {
        const user = me ?? (await meLoaded);
        if (!user) {
          await showDialog({
            title: trans.__('CS3 Account'),
            body: trans.__('The Jupyter server could not tell who you are in CS3.'),
            buttons: [Dialog.okButton()]
          });
          return;
        }
        await showDialog({
          title: trans.__('CS3 Account'),
          body: accountBody(user, trans),
          buttons: [Dialog.okButton({ label: trans.__('Close') })]
        });
      }
    });

    if (palette) {
      const category = trans.__('CS3');
      for (const command of [
        CommandIDs.shareCurrent,
        CommandIDs.infoCurrent,
        CommandIDs.openShares,
        CommandIDs.account
      ]) {
        palette.addItem({ command, category });
      }
    }
    if (userMenu) {
      userMenu.addItem({ command: CommandIDs.account });
    }
    if (toolbarRegistry) {
      toolbarRegistry.addFactory<NotebookPanel>(
        'Notebook',
        'cs3-share',
        notebook =>
          new ToolbarButton({
            icon: shareIcon,
            tooltip: trans.__('Share this notebook'),
            className: 'cs3-toolbar-share',
            onClick: () => void openShareDialog(notebook.context.path, trans, changed)
          })
      );
    }
  }
};

export default [plugin, roomsPlugin];
