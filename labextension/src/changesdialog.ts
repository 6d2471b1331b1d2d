// "Show changes" of an external write the hub merged: the cells the other writer changed.
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

interface IChange {
  kind: string;
  index: number | null;
  source: string;
  before: string;
}

function isChange(value: unknown): value is IChange {
  return !!value && typeof value === 'object' && 'kind' in value && 'source' in value;
}

function block(label: string, text: string, className: string): HTMLElement {
  const box = document.createElement('div');
  box.className = className;
  const title = document.createElement('div');
  title.className = 'cs3-merge-label';
  title.textContent = label;
  const pre = document.createElement('pre');
  pre.textContent = text;
  box.append(title, pre);
  return box;
}

export async function changesDialog(
  name: string,
  who: string,
  changes: unknown[],
  trans: TranslationBundle
): Promise<void> {
  const body = new Widget();
  body.addClass('cs3-changes');
  const list = changes.filter(isChange);
  if (list.length === 0) {
    body.node.textContent = trans.__('No cell source changed (metadata or outputs only).');
  }
  for (const change of list) {
    const row = document.createElement('div');
    row.className = 'cs3-change';
    row.dataset.kind = change.kind;
    row.appendChild(block(trans.__('Cell %1 · %2', change.index ?? '', change.kind), '', 'cs3-change-head'));
    const sides = document.createElement('div');
    sides.className = 'cs3-merge-sides';
    if (change.kind !== 'added') {
      sides.appendChild(block(trans.__('Before'), change.before, 'cs3-merge-side cs3-change-before'));
    }
    if (change.kind !== 'deleted') {
      sides.appendChild(block(trans.__('Now'), change.source, 'cs3-merge-side cs3-change-after'));
    }
    row.appendChild(sides);
    body.node.appendChild(row);
  }
  await showDialog({
    title: trans.__('Changes by %1 in %2', who, name),
    body,
    buttons: [Dialog.okButton({ label: trans.__('Close') })]
  });
}
