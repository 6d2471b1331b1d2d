// The Share dialog's "Other sites" tab (OCM): share with a colleague at another site (a contact)
// as viewer or editor, revoke, and make contacts: create an invite to send them, or accept one
// they sent. Errors are the server's plain words.
import { TranslationBundle } from '@jupyterlab/translation';
import * as React from 'react';

import { api, ApiError, IContact, IInvite, IShare, Role } from './api';

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

export interface IOtherSitesProps {
  path: string;
  trans: TranslationBundle;
  onChanged: () => void;
}

function contactLabel(c: IContact): string {
  return `${c.display_name || c.mail || c.id} (${c.site})`;
}

export function OtherSitesTab(props: IOtherSitesProps): JSX.Element {
  const { path, trans } = props;
  const [contacts, setContacts] = React.useState<IContact[] | null>(null);
  const [grants, setGrants] = React.useState<IShare[]>([]);
  const [role, setRole] = React.useState<Role>('viewer');
  const [invite, setInvite] = React.useState<IInvite | null>(null);
  const [token, setToken] = React.useState('');
  const [site, setSite] = React.useState('');
  const [error, setError] = React.useState('');
  const [notice, setNotice] = React.useState('');

  const reload = React.useCallback(async () => {
    try {
      setContacts(await api.contacts());
      // OCM shares are listed with all shares (not by path): keep this file's
      const all = await api.shares();
      setGrants(all.by_me.filter(s => s.kind === 'ocm' && s.path === path));
    } catch (e) {
      setContacts([]);
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
      props.onChanged();
    } catch (e) {
      setError(message(e));
    }
  };

  return (
    <div className="cs3-other-sites">
      <h3 className="cs3-heading">{trans.__('Colleagues at other sites')}</h3>
      {contacts === null && <div className="cs3-muted">{trans.__('Loading…')}</div>}
      {contacts !== null && contacts.length === 0 && (
        <div className="cs3-muted cs3-no-contacts">
          {trans.__('No contacts yet: invite a colleague below.')}
        </div>
      )}
      {contacts !== null && contacts.length > 0 && (
        <div className="cs3-share-search">
          <select
            className="jp-mod-styled cs3-role cs3-ocm-role"
            aria-label={trans.__('Role')}
            value={role}
            onChange={event => setRole(event.target.value as Role)}
          >
            <option value="viewer">{trans.__('can view')}</option>
            <option value="editor">{trans.__('can edit')}</option>
          </select>
        </div>
      )}
      <ul className="cs3-found cs3-contacts">
        {(contacts ?? []).map(c => (
          <li key={c.address} className="cs3-found-user cs3-contact" data-site={c.site}>
            <span className="cs3-user">
              <strong>{c.display_name || c.id}</strong>{' '}
              <span className="cs3-muted">{c.site}</span>
            </span>
            <button
              className="jp-mod-styled jp-mod-accept cs3-ocm-add"
              onClick={() =>
                void act(
                  () => api.shareFederated(path, c.address, role),
                  trans.__('Shared with %1.', contactLabel(c))
                )
              }
            >
              {trans.__('Share')}
            </button>
          </li>
        ))}
      </ul>

      <h3 className="cs3-heading">{trans.__('Shared with other sites')}</h3>
      {grants.length === 0 && <div className="cs3-muted">{trans.__('Not yet.')}</div>}
      <ul className="cs3-grantees">
        {grants.map(share => (
          <li key={share.id} className="cs3-grantee cs3-ocm-grantee" data-site={share.site}>
            <span className="cs3-user">
              <strong>{share.grantee.display_name || share.grantee.id}</strong>{' '}
              <span className="cs3-muted">
                {share.site} · {share.role === 'editor' ? trans.__('can edit') : trans.__('can view')}
              </span>
            </span>
            <button
              className="jp-mod-styled jp-mod-warn cs3-revoke"
              onClick={() => void act(() => api.unshare(share.id, 'ocm'), trans.__('Revoked.'))}
            >
              {trans.__('Revoke')}
            </button>
          </li>
        ))}
      </ul>

      <h3 className="cs3-heading">{trans.__('Invite a colleague')}</h3>
      <button
        className="jp-mod-styled cs3-ocm-invite"
        onClick={() =>
          void act(async () => setInvite(await api.invite()), trans.__('Invite created.'))
        }
      >
        {trans.__('Create an invite')}
      </button>
      {invite && (
        <div className="cs3-notice cs3-ocm-invite-token" role="status">
          {trans.__('Send your colleague this token and site: %1 at %2', invite.token, invite.site)}
        </div>
      )}
      <div className="cs3-share-search cs3-ocm-accept">
        <input
          className="jp-mod-styled cs3-ocm-token"
          placeholder={trans.__('Invite token')}
          value={token}
          onChange={event => setToken(event.target.value)}
        />
        <input
          className="jp-mod-styled cs3-ocm-site"
          placeholder={trans.__('Their site, e.g. cernbox.cern.ch')}
          value={site}
          onChange={event => setSite(event.target.value)}
        />
        <button
          className="jp-mod-styled cs3-ocm-accept-button"
          onClick={() =>
            void act(async () => {
              await api.acceptInvite(token.trim(), site.trim());
              setToken('');
              setSite('');
            }, trans.__('Contact added.'))
          }
        >
          {trans.__('Accept invite')}
        </button>
      </div>
      {error && (
        <div className="cs3-error" role="alert">
          {error}
        </div>
      )}
      {notice && (
        <div className="cs3-notice" role="status">
          {notice}
        </div>
      )}
    </div>
  );
}
