// The Links tab of the Share dialog: public links (CS3 public shares) with an optional password
// and expiry; copy the address, list, revoke.
import { Clipboard } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { api, ApiError, IPublicLink } from './api';

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

export function LinksTab(props: { path: string; trans: TranslationBundle }): JSX.Element {
  const { path, trans } = props;
  const [links, setLinks] = React.useState<IPublicLink[] | null>(null);
  const [password, setPassword] = React.useState('');
  const [expiry, setExpiry] = React.useState('');
  const [error, setError] = React.useState('');
  const [notice, setNotice] = React.useState('');

  const reload = React.useCallback(async () => {
    try {
      setLinks(await api.links(path));
    } catch (e) {
      setLinks([]);
      setError(message(e));
    }
  }, [path]);

  React.useEffect(() => {
    void reload();
  }, [reload]);

  const act = async (what: () => Promise<unknown>, done: string) => {
    setError('');
    setNotice('');
    try {
      await what();
      setNotice(done);
      await reload();
    } catch (e) {
      setError(message(e));
    }
  };

  const create = () =>
    act(async () => {
      // the date input gives a day; the link lasts until the end of it (local time)
      const expiration = expiry ? new Date(`${expiry}T23:59:59`).getTime() / 1000 : 0;
      await api.createLink(path, password, expiration);
      setPassword('');
      setExpiry('');
    }, trans.__('Link created.'));

  return (
    <div className="cs3-links">
      <div className="cs3-link-form">
        <input
          className="jp-mod-styled cs3-link-password"
          type="password"
          autoComplete="new-password"
          placeholder={trans.__('Password (optional)')}
          aria-label={trans.__('Password (optional)')}
          value={password}
          onChange={event => setPassword(event.target.value)}
        />
        <input
          className="jp-mod-styled cs3-link-expiry"
          type="date"
          aria-label={trans.__('Expires on (optional)')}
          title={trans.__('Expires on (optional)')}
          value={expiry}
          onChange={event => setExpiry(event.target.value)}
        />
        <button className="jp-mod-styled jp-mod-accept cs3-link-create" onClick={() => void create()}>
          {trans.__('Create link')}
        </button>
      </div>
      <div className="cs3-muted">{trans.__('Anyone with the link can view; nobody can edit.')}</div>
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
      <h3 className="cs3-heading">{trans.__('Public links')}</h3>
      {links === null && <div className="cs3-muted">{trans.__('Loading…')}</div>}
      {links !== null && links.length === 0 && (
        <div className="cs3-muted cs3-no-links">{trans.__('No public links.')}</div>
      )}
      <ul className="cs3-link-list">
        {(links ?? []).map(link => (
          <li key={link.id} className="cs3-link" data-token={link.token}>
            <span className="cs3-user">
              <code>{link.url ?? link.token}</code>
              <span className="cs3-muted">
                {' '}
                {link.password_protected ? trans.__('with password') : trans.__('no password')}
                {' · '}
                {link.expiration
                  ? trans.__('expires %1', new Date(link.expiration * 1000).toLocaleDateString())
                  : trans.__('never expires')}
              </span>
            </span>
            <div className="cs3-buttons">
              <button
                className="jp-mod-styled cs3-link-copy"
                onClick={() => {
                  Clipboard.copyToSystem(link.url ?? link.token);
                  setNotice(
                    link.url ? trans.__('Link copied.') : trans.__('Link token copied.')
                  );
                }}
              >
                {trans.__('Copy')}
              </button>
              <button
                className="jp-mod-styled jp-mod-warn cs3-link-revoke"
                onClick={() => void act(() => api.removeLink(link.id), trans.__('Link revoked.'))}
              >
                {trans.__('Revoke')}
              </button>
            </div>
          </li>
        ))}
      </ul>
    </div>
  );
}
