// The File info dialog: owner, size, modified, resource id, your permissions, the lock (holder
// and application) and the shares of the file.
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { Time } from '@jupyterlab/coreutils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { api, ApiError, IFileInfo, userLabel } from './api';

function size(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function when(seconds: number): string {
  const date = new Date(seconds * 1000);
  return `${Time.format(date)} (${Time.formatHuman(date)})`;
}

function lockText(info: IFileInfo, trans: TranslationBundle): string {
  const lock = info.lock;
  if (!lock) {
    return trans.__('not locked');
  }
  const until = lock.expiration ? new Date(lock.expiration * 1000).toLocaleTimeString() : '—';
  if (!lock.holder && lock.app_name === 'cs3collab') {
    // the hub's room lock: taken while the document is open for co-editing, for no one user
    return trans.__('held by the cs3collab hub while the document is open for co-editing (until %1)', until);
  }
  return trans.__(
    'held by %1 through %2 until %3',
    userLabel(lock.holder) || trans.__('an unknown user'),
    lock.app_name || trans.__('an unknown application'),
    until
  );
}

export function InfoBody(props: { path: string; trans: TranslationBundle }): JSX.Element {
  const { path, trans } = props;
  const [info, setInfo] = React.useState<IFileInfo | null>(null);
  const [error, setError] = React.useState('');

  React.useEffect(() => {
    api.info(path).then(setInfo, (e: unknown) =>
      setError(e instanceof ApiError || e instanceof Error ? e.message : String(e))
    );
  }, [path]);

  if (error) {
    return (
      <div className="cs3-error" role="alert">
        {error}
      </div>
    );
  }
  if (!info) {
    return <div className="cs3-muted">{trans.__('Loading…')}</div>;
  }
  const granted = Object.entries(info.permissions)
    .filter(([, allowed]) => allowed)
    .map(([name]) => name);
  const roleLabel =
    info.role === 'owner'
      ? trans.__('owner')
      : info.role === 'editor'
        ? trans.__('can edit')
        : trans.__('can view');
  const rows: [string, string, string][] = [
    ['owner', trans.__('Owner'), info.owner ? `${userLabel(info.owner)} (${info.owner.username})` : '—'],
    ['size', trans.__('Size'), info.is_dir ? '—' : size(info.size)],
    ['modified', trans.__('Modified'), when(info.mtime)],
    ['resource-id', trans.__('Resource id'), `${info.resource_id.storage_id}$${info.resource_id.space_id}!${info.resource_id.opaque_id}`],
    ['role', trans.__('Your access'), roleLabel],
    ['permissions', trans.__('Your permissions'), granted.join(', ')],
    [
      'lock',
      trans.__('Lock'),
      lockText(info, trans)
    ]
  ];
  return (
    <div className="cs3-info">
      <table className="cs3-info-table">
        <tbody>
          {rows.map(([key, label, value]) => (
            <tr key={key} data-field={key}>
              <th>{label}</th>
              <td>{value}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3 className="cs3-heading">{trans.__('Shares')}</h3>
      {!info.sharing && (
        <div className="cs3-muted">{trans.__('Sharing is not available with this storage.')}</div>
      )}
      {info.sharing && info.shares === null && (
        <div className="cs3-muted">{trans.__('Only the owner sees the shares of this file.')}</div>
      )}
      {info.shares && info.shares.length === 0 && (
        <div className="cs3-muted">{trans.__('Not shared with anyone.')}</div>
      )}
      <ul className="cs3-info-shares">
        {(info.shares ?? []).map(share => (
          <li key={share.id}>
            {userLabel(share.grantee)} ({share.grantee.username}):{' '}
            {share.role === 'editor' ? trans.__('can edit') : trans.__('can view')}
          </li>
        ))}
      </ul>
    </div>
  );
}

export async function openInfoDialog(path: string, trans: TranslationBundle): Promise<void> {
  const body = ReactWidget.create(<InfoBody path={path} trans={trans} />);
  body.addClass('cs3-dialog-body');
  await showDialog({
    title: trans.__('File info: %1', path.split('/').pop() || path),
    body,
    buttons: [Dialog.okButton({ label: trans.__('Close') })]
  });
}
