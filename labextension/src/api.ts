// The jupyter_cs3 REST API (/api/cs3/*), called with JupyterLab's server connection (its auth,
// cookies and XSRF). No credentials are handled here: the Jupyter server holds the CS3 token.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export type Role = 'viewer' | 'editor';

export interface IUser {
  id: string;
  username: string;
  display_name: string;
  mail: string;
  idp: string;
}

export interface IMe extends IUser {
  storage: 'cs3' | 'local';
  sharing: boolean;
}

/** Shares with or from another site (OCM) carry `kind: 'ocm'` and the other site's domain. */
export interface IFederated {
  kind?: 'ocm';
  site?: string;
}

export interface IContact {
  id: string;
  site: string;
  address: string;
  display_name: string;
  mail: string;
}

export interface IInvite {
  token: string;
  site: string;
  expiration: number;
}

export interface IShare extends IFederated {
  id: string;
  path: string | null;
  name: string;
  file_id: string;
  role: Role;
  grantee: IUser;
  owner: IUser;
  ctime: number;
}

export interface IReceivedShare extends IFederated {
  is_dir?: boolean; // OCM entries only
  id: string;
  state: 'pending' | 'accepted' | 'rejected' | 'invalid';
  path: string | null;
  name: string;
  file_id: string;
  role: Role;
  owner: IUser;
  ctime: number;
}

export interface ILock {
  app_name: string;
  holder: IUser | null;
  expiration: number;
}

export interface IFileInfo {
  path: string;
  name: string;
  is_dir: boolean;
  size: number;
  mtime: number;
  etag: string;
  file_id: string;
  resource_id: { storage_id: string; space_id: string; opaque_id: string };
  owner: IUser | null;
  permissions: Record<string, boolean>;
  role: 'owner' | Role;
  lock: ILock | null;
  shares: IShare[] | null;
  sharing: boolean;
}

export interface IPublicLink {
  id: string;
  token: string;
  url: string | null;
  path: string | null;
  password_protected: boolean;
  expiration: number;
  ctime: number;
}

/** An error the server explained: `message` is meant for the user. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

async function request<T>(
  method: string,
  endpoint: string,
  query: Record<string, string> = {},
  body?: unknown
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  let url = URLExt.join(settings.baseUrl, 'api/cs3', endpoint);
  const params = new URLSearchParams(query).toString();
  if (params) {
    url += '?' + params;
  }
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = { 'Content-Type': 'application/json' };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(0, `The Jupyter server could not be reached (${String(error)}).`);
  }
  const text = await response.text();
  let data: unknown = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const message =
      data && typeof data === 'object' && 'message' in data
        ? String((data as { message: unknown }).message)
        : response.statusText || `error ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data as T;
}

export const api = {
  me: () => request<IMe>('GET', 'me'),
  findUsers: (query: string) => request<IUser[]>('GET', 'users', { query }),
  shares: () => request<{ by_me: IShare[]; with_me: IReceivedShare[] }>('GET', 'shares'),
  sharesOf: (path: string) =>
    request<{ by_me: IShare[]; with_me: IReceivedShare[] }>('GET', 'shares', { path }),
  share: (path: string, grantee: string, role: Role) =>
    request<IShare>('POST', 'shares', {}, { path, grantee, role }),
  setRole: (id: string, role: Role) =>
    request<IShare>('PATCH', `shares/${encodeURIComponent(id)}`, {}, { role }),
  // OCM entries (kind 'ocm') have their own endpoints: their ids are the OCM share ids
  unshare: (id: string, kind?: 'ocm') =>
    request<null>('DELETE', `${kind === 'ocm' ? 'ocm/' : ''}shares/${encodeURIComponent(id)}`),
  accept: (id: string, kind?: 'ocm') =>
    request<IReceivedShare>(
      'PATCH',
      `${kind === 'ocm' ? 'ocm/' : ''}shares/received/${encodeURIComponent(id)}`,
      {},
      { state: 'accepted' }
    ),
  decline: (id: string, kind?: 'ocm') =>
    request<IReceivedShare>(
      'PATCH',
      `${kind === 'ocm' ? 'ocm/' : ''}shares/received/${encodeURIComponent(id)}`,
      {},
      { state: 'rejected' }
    ),
  invite: () => request<IInvite>('POST', 'ocm/invites', {}, {}),
  acceptInvite: (token: string, site: string) =>
    request<IContact>('POST', 'ocm/invites/accept', {}, { token, site }),
  contacts: (query = '') => request<IContact[]>('GET', 'ocm/contacts', { query }),
  copyFederated: (id: string) =>
    request<{ path: string }>('POST', `ocm/shares/received/${encodeURIComponent(id)}/copy`),
  shareFederated: (path: string, contact: string, role: Role) =>
    request<IShare>('POST', 'ocm/shares', {}, { path, contact, role }),
  info: (path: string) => request<IFileInfo>('GET', 'info', { path }),
  links: (path: string) => request<IPublicLink[]>('GET', 'links', { path }),
  createLink: (path: string, password: string, expiration: number) =>
    request<IPublicLink>('POST', 'links', {}, { path, password, expiration }),
  removeLink: (id: string) => request<null>('DELETE', `links/${encodeURIComponent(id)}`)
};

export function userLabel(user: IUser | null | undefined): string {
  if (!user) {
    return '';
  }
  return user.display_name || user.username || user.id;
}

/** " (at site-b.example)" for an entry of another site, "" for a local one. */
export function siteSuffix(entry: IFederated): string {
  return entry.kind === 'ocm' && entry.site ? ` (${entry.site})` : '';
}
