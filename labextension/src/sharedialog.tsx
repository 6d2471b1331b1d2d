// The Share dialog: find people (debounced FindUsers), share as viewer or editor, change a
// grantee's role, stop sharing. Errors are shown inside the dialog in the server's plain words.
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { api, ApiError, IShare, IUser, Role, userLabel } from './api';
import { LinksTab } from './linkstab';
import { OtherSitesTab } from './othersites';

const SEARCH_DELAY_MS = 300;

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

interface IRoleSelectProps {
  value: Role;
  label: string;
  trans: TranslationBundle;
  onChange: (role: Role) => void;
}

function RoleSelect(props: IRoleSelectProps): JSX.Element {
  return (
    <select
      className="jp-mod-styled cs3-role"
      aria-label={props.label}
      value={props.value}
      onChange={event => props.onChange(event.target.value as Role)}
    >
      <option value="viewer">{props.trans.__('can view')}</option>
      <option value="editor">{props.trans.__('can edit')}</option>
    </select>
  );
}

export interface IShareBodyProps {
  path: string;
  trans: TranslationBundle;
  onChanged: () => void;
}

export function ShareBody(props: IShareBodyProps): JSX.Element {
  const { path, trans } = props;
  const [query, setQuery] = React.useState('');
  const [found, setFound] = React.useState<IUser[]>([]);
  const [searching, setSearching] = React.useState(false);
  const [role, setRole] = React.useState<Role>('viewer');
  const [grants, setGrants] = React.useState<IShare[] | null>(null);
  const [error, setError] = React.useState('');
  const [notice, setNotice] = React.useState('');

  const reload = React.useCallback(async () => {
    try {
      const shares = await api.sharesOf(path);
      setGrants(shares.by_me);
    } catch (e) {
      setGrants([]);
      setError(message(e));
    }
  }, [path]);

  React.useEffect(() => {
    void reload();
  }, [reload]);

  // Debounced look-up: one request per pause in typing; stale answers are dropped.
  React.useEffect(() => {
    const text = query.trim();
    if (text.length < 2) {
      setFound([]);
      setSearching(false);
      return;
    }
    let current = true;
    setSearching(true);
    const timer = window.setTimeout(async () => {
      try {
        const users = await api.findUsers(text);
        if (current) {
          setFound(users);
        }
      } catch (e) {
        if (current) {
          setError(message(e));
        }
      } finally {
        if (current) {
          setSearching(false);
        }
      }
    }, SEARCH_DELAY_MS);
    return () => {
      current = false;
      window.clearTimeout(timer);
    };
  }, [query]);

  const act = async (what: () => Promise<unknown>, done: string) => {
    setError('');
    setNotice('');
    try {
      await what();
      setNotice(done);
      await reload();
      props.onChanged();
    } catch (e) {
      setError(message(e));
    }
  };

  const shareWith = (user: IUser) =>
    act(async () => {
      await api.share(path, user.username, role);
      setQuery('');
      setFound([]);
    }, trans.__('Shared with %1.', userLabel(user)));

  return (
    <div className="cs3-share">
      <div className="cs3-share-search">
        <input
          className="jp-mod-styled cs3-user-search"
          type="search"
          placeholder={trans.__('Name, mail or username')}
          aria-label={trans.__('Find a person')}
          value={query}
          onChange={event => setQuery(event.target.value)}
        />
        <RoleSelect
          value={role}
          label={trans.__('Role for new people')}
          trans={trans}
          onChange={setRole}
        />
      </div>
      {searching && <div className="cs3-muted">{trans.__('Searching…')}</div>}
      {!searching && query.trim().length >= 2 && found.length === 0 && (
        <div className="cs3-muted">{trans.__('Nobody found for "%1".', query.trim())}</div>
      )}
      <ul className="cs3-found">
        {found.map(user => (
          <li key={user.id} className="cs3-found-user">
            <span className="cs3-user">
              <strong>{userLabel(user)}</strong> <span className="cs3-muted">{user.username}</span>
              {user.mail && <span className="cs3-muted"> · {user.mail}</span>}
            </span>
            <button
              className="jp-mod-styled jp-mod-accept cs3-add"
              onClick={() => void shareWith(user)}
            >
              {trans.__('Share')}
            </button>
          </li>
        ))}
      </ul>
      {error && (
        <div className="cs3-error" role="alert">
          {error}
        </div>
      )}
      {notice && !error && (
        <div className="cs3-notice" role="status">
          {notice}
        </div>
      )}
      <h3 className="cs3-heading">{trans.__('People with access')}</h3>
      {grants === null && <div className="cs3-muted">{trans.__('Loading…')}</div>}
      {grants !== null && grants.length === 0 && (
        <div className="cs3-muted cs3-no-grantees">{trans.__('Not shared with anyone.')}</div>
      )}
      <ul className="cs3-grantees">
        {(grants ?? []).map(share => (
          <li key={share.id} className="cs3-grantee" data-username={share.grantee.username}>
            <span className="cs3-user">
              <strong>{userLabel(share.grantee)}</strong>{' '}
              <span className="cs3-muted">{share.grantee.username}</span>
            </span>
            <RoleSelect
              value={share.role}
              label={trans.__('Role of %1', userLabel(share.grantee))}
              trans={trans}
              onChange={next =>
                void act(
                  () => api.setRole(share.id, next),
                  trans.__('%1 now %2.', userLabel(share.grantee), next === 'editor'
                    ? trans.__('can edit')
                    : trans.__('can view'))
                )
              }
            />
            <button
              className="jp-mod-styled jp-mod-warn cs3-remove"
              aria-label={trans.__('Stop sharing with %1', userLabel(share.grantee))}
              onClick={() =>
                void act(
                  () => api.unshare(share.id),
                  trans.__('%1 no longer has access.', userLabel(share.grantee))
                )
              }
            >
              {trans.__('Remove')}
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The dialog's body: a People tab (the ShareBody) and a Links tab (public links). */
export function ShareTabs(props: IShareBodyProps): JSX.Element {
  const [tab, setTab] = React.useState<'people' | 'links' | 'sites'>('people');
  const { trans } = props;
  return (
    <div className="cs3-share-tabs">
      <div className="cs3-tabbar" role="tablist">
        <button
          role="tab"
          aria-selected={tab === 'people'}
          className={`jp-mod-styled cs3-tab cs3-tab-people${tab === 'people' ? ' cs3-tab-current' : ''}`}
          onClick={() => setTab('people')}
        >
          {trans.__('People')}
        </button>
        <button
          role="tab"
          aria-selected={tab === 'links'}
          className={`jp-mod-styled cs3-tab cs3-tab-links${tab === 'links' ? ' cs3-tab-current' : ''}`}
          onClick={() => setTab('links')}
        >
          {trans.__('Links')}
        </button>
        <button
          role="tab"
          aria-selected={tab === 'sites'}
          className={`jp-mod-styled cs3-tab cs3-tab-sites${tab === 'sites' ? ' cs3-tab-current' : ''}`}
          onClick={() => setTab('sites')}
        >
          {trans.__('Other sites')}
        </button>
      </div>
      {tab === 'people' && <ShareBody {...props} />}
      {tab === 'links' && <LinksTab path={props.path} trans={trans} />}
      {tab === 'sites' && <OtherSitesTab {...props} />}
    </div>
  );
}

export async function openShareDialog(
  path: string,
  trans: TranslationBundle,
  onChanged: () => void
): Promise<void> {
  const body = ReactWidget.create(<ShareTabs path={path} trans={trans} onChanged={onChanged} />);
  body.addClass('cs3-dialog-body');
  await showDialog({
    title: trans.__('Share %1', path.split('/').pop() || path),
    body,
    buttons: [Dialog.okButton({ label: trans.__('Done') })]
  });
}
