// Merge a work copy back into its original, seen before it is applied: the cells merged by
// themselves, and each conflict side by side (mine = the original, theirs = the copy) with a
// choice: mine, theirs or both. Cell sources are shown in JupyterLab's own code editors.
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { CodeEditor, CodeEditorWrapper, IEditorServices } from '@jupyterlab/codeeditor';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { Choice, IMergePreview, IMergeResult, roomApi } from './roomapi';

function sourceView(services: IEditorServices, text: string, className: string): Widget {
  const model = new CodeEditor.Model({ mimeType: 'text/x-ipython' });
  model.sharedModel.setSource(text);
  const wrapper = new CodeEditorWrapper({
    factory: services.factoryService.newInlineEditor,
    model,
    editorOptions: { config: { readOnly: true, lineNumbers: false } }
  });
  wrapper.addClass(className);
  wrapper.disposed.connect(() => model.dispose());
  return wrapper;
}

function heading(text: string, className = 'cs3-heading'): HTMLElement {
  const h = document.createElement('div');
  h.className = className;
  h.textContent = text;
  return h;
}

/** The dialog body; ``choices`` is filled in as the person picks. */
class MergeBody extends Widget {
  readonly choices: Record<string, Choice> = {};

  constructor(preview: IMergePreview, services: IEditorServices, trans: TranslationBundle) {
    super();
    this.addClass('cs3-merge');
    const kinds = { added: trans.__('added'), changed: trans.__('changed'), deleted: trans.__('deleted') };
    this.node.appendChild(heading(trans.__('Merged automatically (%1)', preview.auto.length)));
    if (preview.auto.length === 0) {
      this.node.appendChild(heading(trans.__('No change of the copy merges by itself.'), 'cs3-notice'));
    }
    for (const change of preview.auto) {
      const row = document.createElement('div');
      row.className = 'cs3-merge-auto';
      row.dataset.kind = change.kind;
      row.appendChild(heading(`${trans.__('Cell')} ${change.index ?? ''} · ${kinds[change.kind]}`, 'cs3-merge-label'));
      this.node.appendChild(row);
      this._attach(sourceView(services, change.kind === 'deleted' ? change.before : change.source, 'cs3-merge-source'), row);
    }
    this.node.appendChild(heading(trans.__('Conflicts (%1)', preview.conflicts.length)));
    for (const conflict of preview.conflicts) {
      this.choices[conflict.cellId] = 'mine';
      const box = document.createElement('div');
      box.className = 'cs3-merge-conflict';
      box.dataset.cellId = conflict.cellId;
      box.appendChild(heading(`${trans.__('Cell')} ${conflict.index ?? ''}: ${conflict.message}`, 'cs3-merge-label'));
      const sides = document.createElement('div');
      sides.className = 'cs3-merge-sides';
      box.appendChild(sides);
      for (const [side, text, label] of [
        ['mine', conflict.mine, trans.__('Mine (the original)')],
        ['theirs', conflict.theirs, trans.__('Theirs (the copy)')]
      ] as const) {
        const column = document.createElement('div');
        column.className = `cs3-merge-side cs3-merge-${side}`;
        column.appendChild(heading(label, 'cs3-merge-label'));
        sides.appendChild(column);
        this._attach(sourceView(services, text, 'cs3-merge-source'), column);
      }
      const pick = document.createElement('select');
      pick.className = 'cs3-merge-choice';
      for (const [value, label] of [
        ['mine', trans.__('Keep mine')],
        ['theirs', trans.__('Take theirs')],
        ['both', trans.__('Keep both (theirs as a new cell below)')]
      ] as const) {
        pick.add(new Option(label, value));
      }
      pick.addEventListener('change', () => {
        this.choices[conflict.cellId] = pick.value as Choice;
      });
      box.appendChild(pick);
      this.node.appendChild(box);
    }
    for (const note of preview.notes) {
      this.node.appendChild(heading(note, 'cs3-notice'));
    }
  }

  private _attach(widget: Widget, host: HTMLElement): void {
    // Lumino widgets inside plain-DOM rows: attached once the body is in the page
    this._children.push([widget, host]);
  }

  protected onAfterAttach(): void {
    for (const [widget, host] of this._children) {
      if (!widget.isAttached) {
        Widget.attach(widget, host);
      }
    }
  }

  protected onBeforeDetach(): void {
    // while still in the page: Lumino refuses to detach a widget whose host left the DOM
    for (const [widget] of this._children) {
      if (widget.isAttached) {
        Widget.detach(widget);
      }
    }
  }

  dispose(): void {
    for (const [widget] of this._children) {
      widget.dispose();
    }
    super.dispose();
  }

  private _children: [Widget, HTMLElement][] = [];
}

/** Preview, then merge the work copy at ``copyPath``; resolves with the result, or null. */
export async function mergeCopy(
  copyPath: string,
  services: IEditorServices,
  trans: TranslationBundle
): Promise<IMergeResult | null> {
  let preview: IMergePreview;
  try {
    preview = await roomApi.mergePreview(copyPath);
  } catch (error) {
    await showDialog({
      title: trans.__('Cannot merge %1', copyPath),
      body: String((error as Error).message ?? error),
      buttons: [Dialog.okButton()]
    });
    return null;
  }
  const body = new MergeBody(preview, services, trans);
  const result = await showDialog({
    title: trans.__('Merge %1 into %2', copyPath, preview.original ?? trans.__('the original')),
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: trans.__('Merge'), className: 'cs3-merge-apply' })]
  });
  if (!result.button.accept) {
    return null;
  }
  try {
    const merged = await roomApi.merge(copyPath, body.choices);
    Notification.success(trans.__('Merged into %1.', merged.path ?? trans.__('the original')), { autoClose: 6000 });
    return merged;
  } catch (error) {
    Notification.error(trans.__('The merge was not applied: %1', String((error as Error).message ?? error)));
    return null;
  }
}
