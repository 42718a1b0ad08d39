// Drives the VS Code extension's debugger contribution (debug.js) outside VS
// Code, with the stand-in `vscode` module of vscode_stub.js: the adapter the
// factory describes (the language server's command, `dap` for `lsp`, in the
// workspace folder), the store a configuration gets, F5 with no launch
// configuration, "Debug" on a run of the Runs view and the Debug lens.
//
// Usage: node vscode_debug.js CACHE_DIR EXTENSION_DIR WORKSPACE PYTHON
//   WORKSPACE is the workspace folder; PYTHON the interpreter the settings name
//   (`-m flowmetal lsp` as the server's arguments).
// Prints JSON: {"<step>": {...what was seen...}, ...}; the pytest side checks
// it, and starts the adapter described under "descriptor" on the configuration
// resolved under "resolved".
'use strict';

const path = require('path');
const { install } = require('./vscode_stub');

const [cacheDir, extensionDir, workspace, python] = process.argv.slice(2);
delete process.env.FLOWMETAL_STORE; // the defaults under test, not the caller's
const env = install(cacheDir, extensionDir);
const { record, commands, vscode } = env;

const RUN = {
  id: '1956a58dc5864667', entry: 'demo/main', args: ['"ann"', '3'], status: 'completed',
  started: '2026-11-28T12:25:39.792Z', updated: '2026-11-28T12:25:39.900Z', ended: '2026-11-28T12:25:40.000Z',
  result: '7', error: null,
};
let listed = [];
env.respond = (client, method) => (method === 'flowmetal/runs' ? listed : null);

const report = {};
const since = (mark) => env.events.slice(mark);
const started = (mark) => since(mark).filter((e) => e.kind === 'startDebugging');

async function main() {
  const folder = { uri: vscode.Uri.file(workspace), name: path.basename(workspace), index: 0 };
  vscode.workspace.workspaceFolders = [folder];
  env.userSettings['flowmetal.server.path'] = python;
  env.userSettings['flowmetal.server.args'] = ['-m', 'flowmetal', 'lsp', '--log-level', 'debug'];
  env.userSettings['flowmetal.store'] = ' runs/store.db ';
  const extension = require(path.resolve(extensionDir, 'extension.js')); // the source, not the bundle
  const context = { subscriptions: [], asAbsolutePath: (p) => path.resolve(extensionDir, p), secrets: env.secrets,
    workspaceState: env.workspaceState };
  await extension.activate(context);
  report.activation = {
    registered: env.events.filter((e) => e.kind.startsWith('registerDebug')),
    commands: Object.keys(commands),
    initializationOptions: env.clients[0].initializationOptions, // as sent in `initialize`
  };

  // The adapter: the language server's interpreter and its arguments before `lsp`, then `dap`.
  const factory = env.debugFactories.flowmetal;
  const provider = env.debugProviders.flowmetal;
  const descriptor = factory.createDebugAdapterDescriptor({ workspaceFolder: folder, configuration: {} });
  report.descriptor = { command: descriptor.command, args: descriptor.args, options: descriptor.options };
  report.resolved = await provider.resolveDebugConfiguration(folder,
    { type: 'flowmetal', request: 'launch', name: 'Replay', run: RUN.id, stopOnEntry: true });
  report.ownStore = await provider.resolveDebugConfiguration(folder,
    { type: 'flowmetal', request: 'launch', name: 'Replay', run: RUN.id, store: '/elsewhere/store.db' });

  // Default settings: `flowmetal dap`, and the store the language server defaults to.
  env.userSettings['flowmetal.server.path'] = 'flowmetal';
  env.userSettings['flowmetal.server.args'] = ['lsp'];
  env.userSettings['flowmetal.store'] = '';
  report.defaults = {
    descriptor: (({ command, args, options }) => ({ command, args, options }))(
      factory.createDebugAdapterDescriptor({ workspaceFolder: folder, configuration: {} })),
    resolved: await provider.resolveDebugConfiguration(folder, { type: 'flowmetal', request: 'launch', run: 'x' }),
  };
  process.env.FLOWMETAL_STORE = 'env/store.db';
  report.defaults.fromEnvironment = (await provider.resolveDebugConfiguration(folder,
    { type: 'flowmetal', request: 'launch', run: 'x' })).store;
  delete process.env.FLOWMETAL_STORE;
  env.userSettings['flowmetal.store'] = 'runs/store.db';

  // F5 without a launch configuration: no runs yet, then one picked from the Runs view's list.
  let mark = env.events.length;
  report.f5Empty = { resolved: (await provider.resolveDebugConfiguration(folder, {})) || null, events: since(mark) };
  listed = [RUN];
  await commands['flowmetal.runs.refresh']();
  env.quickPickAnswers.push(0);
  mark = env.events.length;
  report.f5 = { resolved: await provider.resolveDebugConfiguration(folder, {}), events: since(mark) };

  // "Debug" on a run of the Runs view.
  mark = env.events.length;
  await commands['flowmetal.runs.debug']({ kind: 'run', id: RUN.id });
  report.runsView = started(mark);
  report.menus = env.manifest.contributes.menus['view/item/context'].filter((m) => m.command === 'flowmetal.runs.debug');

  // The Debug lens: the arguments asked as the Run lens asks them, then a new run debugged.
  const uri = vscode.Uri.file(path.join(workspace, 'demo.flow')).toString();
  const params = [{ name: 'who', type: 'str?', optional: false }, { name: 'n', type: 'int?', optional: true }];
  env.inputAnswers.push(' "ann" ', '3');
  mark = env.events.length;
  await commands['flowmetal.debug']({ uri, entry: 'demo/main', params });
  report.lens = { boxes: since(mark).filter((e) => e.kind === 'inputBox'), started: started(mark) };
  mark = env.events.length;
  await commands['flowmetal.debug']({ uri, entry: 'demo/hello', params: [], args: [] });
  report.lensNoArgs = { events: since(mark) };
  env.inputAnswers.push(undefined); // escaped
  mark = env.events.length;
  await commands['flowmetal.debug']({ uri, entry: 'demo/main', params });
  report.lensEscaped = { events: since(mark) };
  mark = env.events.length;
  await commands['flowmetal.debug']({ uri: 'untitled:Untitled-1', entry: 'demo/hello', params: [], args: [] });
  report.lensUntitled = { events: since(mark) };

  await extension.deactivate();
  process.stdout.write(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
