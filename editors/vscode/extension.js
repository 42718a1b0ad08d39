// VS Code client for Flowmetal. It starts the Flowmetal language server
// (`flowmetal lsp`, over stdio) for Flowmetal documents and holds no language
// logic of its own: diagnostics, hover, completion, navigation and the rest
// all come from the server.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client;

function serverCommand() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const command = config.get('server.path') || 'flowmetal';
  const args = config.get('server.args');
  return { command, args: Array.isArray(args) ? args.map(String) : ['lsp'] };
}

async function startClient() {
  const { command, args } = serverCommand();
  const executable = { command, args, transport: TransportKind.stdio };
  const serverOptions = { run: executable, debug: executable };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'flowmetal' },
      { scheme: 'untitled', language: 'flowmetal' },
    ],
  };
  client = new LanguageClient('flowmetal', 'Flowmetal Language Server', serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `Flowmetal: could not start the language server \`${[command, ...args].join(' ')}\` ` +
        `(${err && err.message ? err.message : err}). ` +
        'Install Flowmetal or set "flowmetal.server.path".'
    );
  }
}

async function stopClient() {
  const running = client;
  client = undefined;
  if (running) {
    try {
      await running.stop();
    } catch (_) {
      // A server that never started has nothing to stop.
    }
  }
}

async function restartClient() {
  await stopClient();
  await startClient();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('flowmetal.restartServer', restartClient),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration('flowmetal.server')) {
        return restartClient();
      }
      return undefined;
    })
  );
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
