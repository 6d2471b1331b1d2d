// The Shares panel (left sidebar): Pending (accept / decline), Shared with me (open, show in the
// file browser), Shared by me (change the role, revoke). Refreshes itself while it is visible.
import { ReactWidget } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Message } from '@lumino/messaging';
import { Signal } from '@lumino/signaling';
import * as React from 'react';

import { api, ApiError, IReceivedShare, IShare, Role, siteSuffix, userLabel } from './api';

export const REFRESH_MS = 5000;

export interface IPanelActions {
  open: (path: string) => void;
  reveal: (path: string) => void;
}

interface IState {
  byMe: IShare[];
  withMe: IReceivedShare[];
  error: string;
  loaded: boolean;
}

function message(error: unknown): string {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

function SharesView(props: {
  model: SharesPanel;
  trans: TranslationBundle;
  actions: IPanelActions;
}): JSX.Element {
  const { model, trans, actions } = props;
  const [state, setState] = React.useState<IState>({
    byMe: [],
    withMe: [],
    error: '',
    loaded: false
  });
  const [actionError, setActionError] = React.useState('');

  const refresh = React.useCallback(async () => {
    try {
      const shares = await api.shares();
      setState({ byMe: shares.by_me, withMe: shares.with_me, error: '', loaded: true });
    } catch (e) {
      setState(old => ({ ...old, error: message(e), loaded: true }));
    }
  }, []);

  React.useEffect(() => {
    void refresh();
    const onRefresh = () => void refresh();
    model.refreshRequested.connect(onRefresh);
    return () => {
      model.refreshRequested.disconnect(onRefresh);
    };
  }, [model, refresh]);

  const act = async (what: () => Promise<unknown>) => {
    setActionError('');
    try {
      await what();
    } catch (e) {
      setActionError(message(e));
    }
    await refresh();
  };

  const pending = state.withMe.filter(s => s.state === 'pending');
  const accepted = state.withMe.filter(s => s.state === 'accepted');
  const role = (r: Role) => (r === 'editor' ? trans.__('can edit') : trans.__('can view'));

  return (
    <div className="cs3-shares-panel">
      <div className="jp-stack-panel-header cs3-panel-header">
        <h2>{trans.__('Shares')}</h2>
        <button
          className="jp-mod-styled cs3-refresh"
          title={trans.__('Refresh')}
          onClick={() => void refresh()}
        >
          {trans.__('Refresh')}
        </button>
      </div>
      {state.error && (
        <div className="cs3-error" role="alert">
          {state.error}
        </div>
      )}
      {actionError && (
        <div className="cs3-error" role="alert">
          {actionError}
        </div>
      )}
      {!state.loaded && <div className="cs3-muted">{trans.__('Loading…')}</div>}

      <section className="cs3-section cs3-pending">
        <h3 className="cs3-heading">{trans.__('Pending (%1)', pending.length)}</h3>
        {pending.length === 0 && <div className="cs3-muted">{trans.__('Nothing waiting.')}</div>}
        <ul>
          {pending.map(share => (
            <li key={share.id} className="cs3-share-item" data-name={share.name}>
              <div>
                <strong>{share.name}</strong>
                <div className="cs3-muted">
                  {trans.__(
                    'from %1, %2',
                    userLabel(share.owner) + siteSuffix(share),
                    role(share.role)
                  )}
                </div>
              </div>
              <div className="cs3-buttons">
                <button
                  className="jp-mod-styled jp-mod-accept cs3-accept"
                  onClick={() => void act(() => api.accept(share.id, share.kind))}
                >
                  {trans.__('Accept')}
                </button>
                <button
                  className="jp-mod-styled jp-mod-reject cs3-decline"
                  onClick={() => void act(() => api.decline(share.id, share.kind))}
                >
                  {trans.__('Decline')}
                </button>
              </div>
            </li>
          ))}
        </ul>
      </section>

      <section className="cs3-section cs3-with-me">
        <h3 className="cs3-heading">{trans.__('Shared with me (%1)', accepted.length)}</h3>
        {accepted.length === 0 && <div className="cs3-muted">{trans.__('Nothing yet.')}</div>}
        <ul>
          {accepted.map(share => (
            <li key={share.id} className="cs3-share-item" data-name={share.name}>
              <div>
                <strong>{share.name}</strong>
                <div className="cs3-muted">
                  {trans.__(
                    'from %1, %2',
                    userLabel(share.owner) + siteSuffix(share),
                    role(share.role)
                  )}
                </div>
              </div>
              {share.path && (
                <div className="cs3-buttons">
                  <button
                    className="jp-mod-styled cs3-open"
                    onClick={() => actions.open(share.path as string)}
                  >
                    {trans.__('Open')}
                  </button>
                  <button
                    className="jp-mod-styled cs3-reveal"
                    onClick={() => actions.reveal(share.path as string)}
                  >
                    {trans.__('Show in files')}
                  </button>
                  {share.kind === 'ocm' && !share.is_dir && (
                    // When the owner's site cannot host the live room: a copy, named as one
                    <button
                      className="jp-mod-styled cs3-ocm-copy"
                      title={trans.__('A copy in your own files, named after its site and date')}
                      onClick={() =>
                        void act(async () => actions.open((await api.copyFederated(share.id)).path))
                      }
                    >
                      {trans.__('Make a copy')}
                    </button>
                  )}
                </div>
              )}
            </li>
          ))}
        </ul>
      </section>

      <section className="cs3-section cs3-by-me">
        <h3 className="cs3-heading">{trans.__('Shared by me (%1)', state.byMe.length)}</h3>
        {state.byMe.length === 0 && <div className="cs3-muted">{trans.__('Nothing yet.')}</div>}
        <ul>
          {state.byMe.map(share => (
            <li
              key={share.id}
              className="cs3-share-item"
              data-name={share.name}
              data-username={share.grantee.username}
            >
              <div>
                <strong>{share.name}</strong>
                <div className="cs3-muted">
                  {trans.__('with %1', userLabel(share.grantee) + siteSuffix(share))}
                </div>
              </div>
              <div className="cs3-buttons">
                {share.kind !== 'ocm' && (
                  <select
                    className="jp-mod-styled cs3-role"
                    aria-label={trans.__('Role of %1', userLabel(share.grantee))}
                    value={share.role}
                    onChange={event =>
                      void act(() => api.setRole(share.id, event.target.value as Role))
                    }
                  >
                    <option value="viewer">{trans.__('can view')}</option>
                    <option value="editor">{trans.__('can edit')}</option>
                  </select>
                )}
                <button
                  className="jp-mod-styled jp-mod-warn cs3-revoke"
                  onClick={() => void act(() => api.unshare(share.id, share.kind))}
                >
                  {trans.__('Revoke')}
                </button>
              </div>
            </li>
          ))}
        </ul>
      </section>
    </div>
  );
}

export class SharesPanel extends ReactWidget {
  constructor(
    private readonly trans: TranslationBundle,
    private readonly actions: IPanelActions
  ) {
    super();
    this.id = 'cs3collab-shares';
    this.addClass('cs3-shares');
    this.title.caption = trans.__('Shares');
  }

  /** Emitted to make the panel load its lists again. */
  readonly refreshRequested = new Signal<this, void>(this);

  refresh(): void {
    this.refreshRequested.emit();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.refresh();
    this._startTimer();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this._startTimer();
    }
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this._stopTimer();
  }

  protected onBeforeDetach(msg: Message): void {
    super.onBeforeDetach(msg);
    this._stopTimer();
  }

  dispose(): void {
    this._stopTimer();
    Signal.clearData(this);
    super.dispose();
  }

  private _startTimer(): void {
    if (this._timer === 0) {
      this._timer = window.setInterval(() => this.refresh(), REFRESH_MS);
    }
  }

  private _stopTimer(): void {
    if (this._timer !== 0) {
      window.clearInterval(this._timer);
      this._timer = 0;
    }
  }

  protected render(): JSX.Element {
    return <SharesView model={this} trans={this.trans} actions={this.actions} />;
  }

  private _timer = 0;
}
