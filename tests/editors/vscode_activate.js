// Loads the VS Code extension's extension.js outside VS Code, with a stand-in
// `vscode` module (vscode_stub.js), and records how it starts the Flowmetal
// language server: command, arguments, transport, document selector, run
// settings (sent again when they change), workspace trust (at the start, and
// granted later), restarts on settings changes, the restart command, and the
// message shown when the server cannot start.
//
// Usage: node vscode_activate.js CACHE_DIR EXTENSION_DIR
//   CACHE_DIR holds node_modules with the real vscode-languageclient, whose
//   exports (LanguageClient, RevealOutputChannelOn) the extension must find.
// Prints JSON: {"revealOutputChannelOn": {...}, "events": [...], "output": [{name, lines}]}.
'use strict';

const path = require('path');
const { install } = require('./vscode_stub');

const [cacheDir, extensionDir] = process.argv.slice(2);
const env = install(cacheDir, extensionDir);
const { record, commands } = env;

async function main() {
  const extension = require(path.resolve(extensionDir, 'extension.js')); // the source, not the bundle
  const context = { subscriptions: [], asAbsolutePath: (p) => path.resolve(extensionDir, p), secrets: env.secrets,
    workspaceState: env.workspaceState };

  env.userSettings['flowmetal.store'] = 'runs/store.db';
  env.userSettings['flowmetal.serve'] = ' http://127.0.0.1:8080 ';
  record({ kind: 'step', name: 'activate' });
  await extension.activate(context);
  record({ kind: 'subscriptions', count: context.subscriptions.length });

  record({ kind: 'step', name: 'change run settings' });
  await env.changeSettings({ 'flowmetal.store': 'other/store.db' });

  record({ kind: 'step', name: 'grant trust' });
  await env.grantTrust();

  record({ kind: 'step', name: 'change run settings, trusted' });
  await env.changeSettings({ 'flowmetal.serve': '' });

  record({ kind: 'step', name: 'change server settings' });
  await env.changeSettings({
    'flowmetal.server.path': '/opt/flowmetal/bin/flowmetal',
    'flowmetal.server.args': ['lsp', '--log-level', 'debug'],
    'flowmetal.token': 'secret',
  });

  record({ kind: 'step', name: 'change other settings' });
  await env.changeSettings({ 'editor.fontSize': 14 });

  record({ kind: 'step', name: 'restart command' });
  await commands['flowmetal.restartServer']();

  record({ kind: 'step', name: 'server fails to start' });
  env.failNextStart = true;
  await commands['flowmetal.restartServer']();

  record({ kind: 'step', name: 'deactivate' });
  await extension.deactivate();

  process.stdout.write(JSON.stringify({
    revealOutputChannelOn: env.realClient.RevealOutputChannelOn,
    events: env.events,
    output: env.outputs.map((channel) => ({ name: channel.name, lines: channel.lines })),
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
