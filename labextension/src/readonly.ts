// Editing commands are disabled in read-only rooms (viewers, foreign locks).
//
// The notebook's own commands do not know our read-only state and act on the model directly,
// so CommandRegistry.isEnabled / execute are wrapped once: a command that changes a notebook
// (run, edit, move, paste, undo, outputs) is disabled while the current notebook is read-only.
// Key bindings, menus and toolbar buttons all ask isEnabled; execute covers direct calls.
import { CommandRegistry } from '@lumino/commands';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';

const MUTATING = new RegExp(
  '^(notebook:(run|restart-run|delete|cut|paste|insert|move-cell|merge|split|change-cell|' +
    'clear|undo|redo|replace|hide|show|toggle-all-cell-output|access-(previous|next)-history|' +
    'set-side-by-side)|runmenu:run|editmenu:(undo|redo|clear))'
);

export function isMutating(command: string): boolean {
  return MUTATING.test(command);
}

export function guardCommands(commands: CommandRegistry, currentIsReadOnly: () => boolean): void {
  const isEnabled = commands.isEnabled.bind(commands);
  const execute = commands.execute.bind(commands);
  commands.isEnabled = (id: string, args?: ReadonlyPartialJSONObject): boolean =>
    isMutating(id) && currentIsReadOnly() ? false : isEnabled(id, args);
  commands.execute = (id: string, args?: ReadonlyPartialJSONObject): Promise<unknown> =>
    isMutating(id) && currentIsReadOnly()
      ? Promise.reject(new Error(`${id}: this notebook is read-only`))
      : execute(id, args);
}
