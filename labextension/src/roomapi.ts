// Room operations relayed by jupyter_cs3 to the hub (/api/cs3/work-copy, merge-preview, merge):
// the Jupyter server adds the user's CS3 token, which the browser never holds.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError } from './api';

export type Choice = 'mine' | 'theirs' | 'both';

export interface IAutoChange {
  kind: 'added' | 'changed' | 'deleted';
  cellId: string | null;
  index: number | null;
  source: string;
  before: string;
}

export interface IConflict {
  cellId: string;
  index: number | null;
  mine: string;
  theirs: string;
  message: string;
}

export interface IMergePreview {
  original: string | null;
  auto: IAutoChange[];
  conflicts: IConflict[];
  notes: string[];
}

export interface IMergeResult {
  status: 'merged' | 'conflict' | 'failed';
  path: string | null;
  conflicts?: string[];
  message?: string;
}

async function post<T>(endpoint: string, path: string, body: unknown = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'api/cs3', endpoint) + '?' + new URLSearchParams({ path });
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } },
      settings
    );
  } catch (error) {
    throw new ApiError(0, `The Jupyter server could not be reached (${String(error)}).`);
  }
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
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

export const roomApi = {
  workCopy: (path: string) => post<{ path: string | null; original: string | null }>('work-copy', path),
  mergePreview: (copyPath: string) => post<IMergePreview>('merge-preview', copyPath),
  merge: (copyPath: string, choices: Record<string, Choice>) =>
    post<IMergeResult>('merge', copyPath, { choices })
};
