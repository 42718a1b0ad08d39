// The API token of a `flowmetal serve` (its FLOWMETAL_TOKEN, which the
// language server sends as `Authorization: Bearer`), kept in VS Code's
// SecretStorage: the OS keychain, or VS Code's encrypted store, rather than a
// settings file that may be synced, shared or committed.
//
// The command "Flowmetal: Set API Token" stores it (an empty answer removes
// it). A token still in the `flowmetal.token` setting, where earlier versions
// kept it, is moved here and removed from the settings, with a message; that
// happens when the extension starts and whenever the setting is given again.
// Secret storage is per user, not per workspace: one token for every window.
'use strict';

const vscode = require('vscode');

const KEY = 'flowmetal.token';

class ApiToken {
  // onChange: called (and awaited) when the token changes, to tell the server.
  constructor(context, onChange) {
    this.secrets = context.secrets;
    this.onChange = onChange;
    this.value = null; // the token, or null: none
    context.subscriptions.push(
      vscode.commands.registerCommand('flowmetal.setToken', () => this.ask()),
      // Set in another window, or by this one.
      this.secrets.onDidChange(async (event) => {
        if (event.key === KEY && (await this.load())) await this.onChange();
      })
    );
  }

  // Reads the stored token; answers whether it differs from the one known.
  async load() {
    const stored = await this.secrets.get(KEY);
    const value = typeof stored === 'string' && stored ? stored : null;
    const changed = value !== this.value;
    this.value = value;
    return changed;
  }

  // Moves a token found in the settings into secret storage and removes it
  // from them; answers whether it moved one. The workspace's own settings are
  // read only when the workspace is trusted: VS Code ignores them otherwise
  // (the setting is restricted), and a cloned repository's settings file must
  // not choose the token sent to a serve.
  async migrate() {
    const config = vscode.workspace.getConfiguration('flowmetal');
    const inspected = config.inspect('token') || {};
    const places = [['globalValue', vscode.ConfigurationTarget.Global, 'user settings']];
    if (vscode.workspace.isTrusted === true) {
      places.push(['workspaceValue', vscode.ConfigurationTarget.Workspace, 'workspace settings']);
    }
    const found = places.filter(([key]) => typeof inspected[key] === 'string' && inspected[key].trim());
    if (!found.length) return false;
    // The most specific one, as the settings themselves would have it.
    const token = inspected[found[found.length - 1][0]].trim();
    // Known before it is stored: the change secret storage announces is no news then.
    this.value = token;
    await this.secrets.store(KEY, token);
    const kept = [];
    for (const [, target, name] of found) {
      try {
        await config.update('token', undefined, target);
      } catch (_) {
        kept.push(name);
      }
    }
    if (kept.length) {
      vscode.window.showWarningMessage(
        'Flowmetal: the API token is now kept in VS Code\'s secret storage, but "flowmetal.token" could not ' +
          `be removed from your ${kept.join(' and ')}: remove it there by hand.`
      );
    } else {
      vscode.window.showInformationMessage(
        'Flowmetal: the API token ("flowmetal.token") was moved from your settings to VS Code\'s secret ' +
          'storage. Use "Flowmetal: Set API Token" to change it.'
      );
    }
    return true;
  }

  // The command: asks for the token, hidden as it is typed.
  async ask() {
    const answer = await vscode.window.showInputBox({
      title: 'Flowmetal: Set API Token',
      prompt: 'The FLOWMETAL_TOKEN of the serve named by "flowmetal.serve", kept in VS Code\'s secret ' +
        'storage. Leave it empty to remove the token.',
      password: true,
      ignoreFocusOut: true,
    });
    if (answer === undefined) return; // Escape: nothing changes.
    const token = answer.trim() || null;
    const changed = token !== this.value;
    this.value = token;
    if (token) await this.secrets.store(KEY, token);
    else await this.secrets.delete(KEY);
    vscode.window.showInformationMessage(token ? 'Flowmetal: API token saved.' : 'Flowmetal: API token removed.');
    if (changed) await this.onChange();
  }
}

module.exports = { ApiToken, KEY };
