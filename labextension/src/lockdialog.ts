// "This file is modified by another person": Preview (stay read-only and live) or Work on a
// copy (the hub copies the live document; the copy opens beside the original).
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { roomApi } from './roomapi';

export interface ILockDialogOptions {
  path: string;
  holder: string;
  trans: TranslationBundle;
  /** opens ``path`` beside the original */
  openBeside: (path: string) => Promise<void>;
}

function body(options: ILockDialogOptions): Widget {
  const { trans } = options;
  const widget = new Widget();
  widget.addClass('cs3-lock-dialog');
  const who = document.createElement('p');
  who.className = 'cs3-lock-holder';
  who.textContent = trans.__('%1 is being modified by another person: %2.', options.path, options.holder);
  const what = document.createElement('p');
  what.textContent = trans.__(
    'Preview follows their changes live, read-only. Work on a copy lets you edit a copy beside it now and merge it back once the file is free.'
  );
  widget.node.append(who, what);
  return widget;
}

/** Shows the dialog; resolves with the copy's path if one was made. */
export async function showLockDialog(options: ILockDialogOptions): Promise<string | null> {
  const { trans } = options;
  const result = await showDialog({
    title: trans.__('Modified by another person'),
    body: body(options),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Preview'), className: 'cs3-lock-preview' }),
      Dialog.okButton({ label: trans.__('Work on a copy'), className: 'cs3-lock-copy' })
    ]
  });
  if (!result.button.accept) {
    return null;
  }
  try {
    const copy = await roomApi.workCopy(options.path);
    if (!copy.path) {
      Notification.warning(trans.__('The copy was made where you cannot open it.'));
      return null;
    }
    await options.openBeside(copy.path);
    Notification.info(trans.__('You are working on a copy: %1. Merge it back when the original is free.', copy.path), {
      autoClose: 8000
    });
    return copy.path;
  } catch (error) {
    Notification.error(trans.__('No copy was made: %1', String((error as Error).message ?? error)));
    return null;
  }
}
