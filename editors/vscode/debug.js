// Debugging runs from VS Code: the `flowmetal` debugger.
//
// VS Code speaks the Debug Adapter Protocol with `flowmetal dap`
// (docs/debugging.md), which replays a run one evaluation step at a time,
// forward and back. This module only starts it and tells it what to debug:
//
// - The adapter is started as the language server is: the command of
//   `flowmetal.server.path`, the arguments of `flowmetal.server.args` that come
//   before `lsp` (an interpreter's `-m flowmetal`, say), then `dap`; in the
//   session's workspace folder, so a relative `program` or `store` in a launch
//   configuration means what it means to the language server.
// - A launch configuration without `store` gets the language server's store:
//   `flowmetal.store`, else FLOWMETAL_STORE, else `.flowmetal/store.db`,
//   relative to the first workspace folder. So "Debug" on a run of the Runs
//   view finds that run. (With `flowmetal.serve` set, the Runs view shows the
//   serve's runs, which the debugger finds only if the serve's store is that one.)
// - "Debug" on a run of the Runs view starts a `run` configuration; the
//   `Debug` lens of an entry (sent by the language server to this client only,
//   `debugLens` in initializationOptions) asks for the arguments as the Run
//   lens does and starts a `program` configuration: a new run, followed.
//
// Nothing here reads Flowmetal: arguments go to the adapter as typed.
'use strict';

const path = require('path');
const vscode = require('vscode');

const TYPE = 'flowmetal';

function errorMessage(err) {
  return err && err.message ? err.message : String(err);
}

// How `flowmetal dap` is started: {command, args}.
function adapterCommand() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const command = config.get('server.path') || 'flowmetal';
  const given = config.get('server.args');
  const args = Array.isArray(given) ? given.map(String) : ['lsp'];
  const at = args.indexOf('lsp');
  return { command, args: [...(at >= 0 ? args.slice(0, at) : args), 'dap'] };
}

function firstFolder() {
  return (vscode.workspace.workspaceFolders || [])[0];
}

// The store the language server uses (lsp/runs.py, flowmetal.ide.workbench).
function defaultStore() {
  const setting = vscode.workspace.getConfiguration('flowmetal').get('store');
  const given = typeof setting === 'string' && setting.trim() ? setting.trim() : undefined;
  const location = given || process.env.FLOWMETAL_STORE || path.join('.flowmetal', 'store.db');
  const folder = firstFolder();
  if (!folder || location.includes('://') || path.isAbsolute(location)) return location;
  return path.join(folder.uri.fsPath, location);
}

class AdapterFactory {
  createDebugAdapterDescriptor(session) {
    const { command, args } = adapterCommand();
    const folder = (session && session.workspaceFolder) || firstFolder();
    const options = folder && folder.uri && folder.uri.scheme === 'file' ? { cwd: folder.uri.fsPath } : {};
    return new vscode.DebugAdapterExecutable(command, args, options);
  }
}

class Debugger {
  // `panel`: the Runs panel (runs.js), for the run an action is on and the runs to pick from.
  constructor(context, panel) {
    this.panel = panel;
    context.subscriptions.push(
      vscode.debug.registerDebugAdapterDescriptorFactory(TYPE, new AdapterFactory()),
      vscode.debug.registerDebugConfigurationProvider(TYPE, this),
      vscode.commands.registerCommand('flowmetal.runs.debug', (element) => this.debugRun(element)),
      vscode.commands.registerCommand('flowmetal.debug', (arg) => this.debugEntry(arg))
    );
  }

  // -- DebugConfigurationProvider --

  // F5 with no launch configuration: pick one of the runs the Runs view lists.
  // Every configuration gets the language server's store unless it names one.
  async resolveDebugConfiguration(folder, config) {
    let resolved = config || {};
    if (!resolved.type && !resolved.request && !resolved.name) {
      resolved = await this.pickRun();
      if (!resolved) return undefined; // nothing picked: no session
    }
    resolved = { ...resolved, type: TYPE, request: resolved.request || 'launch' };
    if (resolved.store == null || resolved.store === '') resolved.store = defaultStore();
    return resolved;
  }

  async pickRun() {
    const runs = [...this.panel.runs.values()].reverse(); // newest first
    if (!runs.length) {
      vscode.window.showInformationMessage(
        'Flowmetal: no runs to debug yet. Run a function with its ▶ Run lens, or debug a new run with its Debug lens.');
      return undefined;
    }
    const picked = await vscode.window.showQuickPick(runs.map((run) => ({
      label: run.entry || run.id,
      description: [run.status, run.id].filter(Boolean).join(' · '),
      run,
    })), { title: 'Debug a Flowmetal run', placeHolder: 'the run to replay in the debugger' });
    return picked ? this.runConfiguration(picked.run.id) : undefined;
  }

  runConfiguration(runId) {
    const run = this.panel.runs.get(runId);
    const name = `Debug run ${String(runId).slice(0, 8)}${run && run.entry ? ` (${run.entry})` : ''}`;
    return { type: TYPE, request: 'launch', name, run: runId };
  }

  // -- commands --

  // "Debug" on a run of the Runs view (or the selected one).
  async debugRun(element) {
    const runId = this.panel.runIdOf(element);
    if (!runId) return false;
    return this.start(this.runConfiguration(runId));
  }

  // The Debug lens: {uri, entry, params, args?} as the Run lens's (docs/lsp-protocol.md).
  async debugEntry(arg) {
    if (!arg || typeof arg.entry !== 'string') return false;
    const uri = vscode.Uri.parse(String(arg.uri));
    if (uri.scheme !== 'file') {
      vscode.window.showErrorMessage(`Flowmetal: save ${arg.entry}'s file to debug it: the debugger runs files.`);
      return false;
    }
    let args = Array.isArray(arg.args) ? arg.args.map(String) : undefined;
    if (args === undefined) {
      args = await this.panel.askArguments(arg, 'Debug');
      if (args === undefined) return false; // escaped: nothing runs
    }
    // The adapter reads the file from disk: unsaved changes go there first.
    const document = (vscode.workspace.textDocuments || []).find((doc) => doc.uri.toString() === uri.toString());
    if (document && document.isDirty) await document.save();
    return this.start({ type: TYPE, request: 'launch', name: `Debug ${arg.entry}`, program: uri.fsPath,
      entry: arg.entry, args });
  }

  async start(config) {
    try {
      return await vscode.debug.startDebugging(firstFolder(), config);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: could not start debugging (${errorMessage(err)})`);
      return false;
    }
  }
}

module.exports = { Debugger, AdapterFactory, adapterCommand, defaultStore };
