// Loads the VS Code extension outside VS Code, with a stand-in `vscode` module
// (vscode_stub.js), and records what becomes of the API token of a serve: the
// server spawned while secret storage is slow to answer, and sent the token
// once it has; a token in the settings moved to secret storage at the start (the user's
// settings; the workspace's only once it is trusted), the command "Flowmetal:
// Set API Token" (a token, Escape, an empty answer), a token given in the
// settings again, one stored by another window, settings that cannot be
// written, and the token the language server gets each time.
//
// Usage: node vscode_token.js CACHE_DIR EXTENSION_DIR
// The start-up trace is on (flowmetal.trace.startup).
// Prints JSON: {"events": [...], "userSettings": {...}, "workspaceSettings": {...}, "secrets": {...},
//   "output": [{name, lines}]}.
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

  env.userSettings['flowmetal.trace.startup'] = true;
  env.userSettings['flowmetal.serve'] = 'http://127.0.0.1:8700';
  env.userSettings['flowmetal.token'] = ' user-token ';
  env.workspaceSettings['flowmetal.token'] = 'workspace-token';
  // Secret storage answers slowly: the server is spawned meanwhile, and sent
  // `initialize` (with the token) only once it has answered.
  let answer;
  env.secretsGate = new Promise((resolve) => { answer = resolve; });
  record({ kind: 'step', name: 'activate' });
  const activated = extension.activate(context);
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
  record({ kind: 'step', name: 'secret storage answers' });
  env.secretsGate = null;
  answer();
  await activated;

  record({ kind: 'step', name: 'grant trust' });
  await env.grantTrust();

  record({ kind: 'step', name: 'set token' });
  env.inputAnswers.push(' typed-token ');
  await commands['flowmetal.setToken']();

  record({ kind: 'step', name: 'escape' });
  await commands['flowmetal.setToken']();

  record({ kind: 'step', name: 'remove token' });
  env.inputAnswers.push('');
  await commands['flowmetal.setToken']();

  record({ kind: 'step', name: 'token in settings again' });
  await env.changeSettings({ 'flowmetal.token': 'pasted-token' });

  record({ kind: 'step', name: 'another window' });
  await env.storeSecretElsewhere('flowmetal.token', 'other-window-token');

  record({ kind: 'step', name: 'settings not writable' });
  env.failUpdates = true;
  await env.changeSettings({ 'flowmetal.token': 'stuck-token' });
  env.failUpdates = false;

  record({ kind: 'step', name: 'restart' });
  await commands['flowmetal.restartServer']();

  record({ kind: 'step', name: 'deactivate' });
  await extension.deactivate();

  process.stdout.write(JSON.stringify({
    events: env.events,
    userSettings: env.userSettings,
    workspaceSettings: env.workspaceSettings,
    secrets: env.secretValues,
    output: env.outputs.map((channel) => ({ name: channel.name, lines: channel.lines })),
  }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
