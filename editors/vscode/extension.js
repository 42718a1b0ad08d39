// VS Code client for Flowmetal. It starts the Flowmetal language server
// (`flowmetal lsp`, over stdio) for Flowmetal documents and holds no language
// logic of its own: diagnostics, hover, completion, navigation and the rest
// all come from the server, and so do the runs and traces shown in the
// Flowmetal side bar (runs.js, docs/lsp-protocol.md).
'use strict';

const vscode = require('vscode');
const { LanguageClient, RevealOutputChannelOn } = require('vscode-languageclient/node');
const { RunsPanel } = require('./runs');

let client;
let panel;

function serverCommand() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const command = config.get('server.path') || 'flowmetal';
  const args = config.get('server.args');
  return { command, args: Array.isArray(args) ? args.map(String) : ['lsp'] };
}

// The server's run settings: the store, and the `flowmetal serve` that drives
// runs (with its token). Unset ones are null: the server's defaults apply.
function runSettings() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const setting = (key) => {
    const value = config.get(key);
    return typeof value === 'string' && value.trim() ? value.trim() : null;
  };
  return { store: setting('store'), serve: setting('serve'), token: setting('token') };
}

async function startClient() {
  const { command, args } = serverCommand();
  // No `transport`: the server is spawned with its stdio as the connection. Given
  // `TransportKind.stdio`, vscode-languageclient would add a `--stdio` argument,
  // which `flowmetal lsp` does not take.
  const executable = { command, args };
  const serverOptions = { run: executable, debug: executable };
  let started;
  let ready = false;
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'flowmetal' },
      { scheme: 'untitled', language: 'flowmetal' },
    ],
    initializationOptions: runSettings(),
    // The whole `flowmetal` section goes to the server (workspace/didChangeConfiguration)
    // at start and on every change; it reads `store`, `serve` and `token` from it.
    synchronize: { configurationSection: 'flowmetal' },
    // Failed requests are logged in the output channel; the run commands show
    // the server's own message instead of a generic notification.
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware: {
      executeCommand: (name, commandArgs, next) => panel.executeCommand(name, commandArgs, next),
      workspace: {
        didChangeConfiguration: async (sections, next) => {
          // The first one goes with the start, which lists the runs itself.
          const changed = ready;
          await next(sections);
          // Another store (or serve) holds other runs.
          if (changed && client === started) await panel.refresh();
        },
      },
    },
  };
  started = client = new LanguageClient('flowmetal', 'Flowmetal Language Server', serverOptions, clientOptions);
  panel.attach(started);
  try {
    await started.start();
  } catch (err) {
    panel.detach(started);
    vscode.window.showErrorMessage(
      `Flowmetal: could not start the language server \`${[command, ...args].join(' ')}\` ` +
        `(${err && err.message ? err.message : err}). ` +
        'Install Flowmetal or set "flowmetal.server.path".'
    );
    return;
  }
  ready = true;
  if (client === started) await panel.refresh();
}

async function stopClient() {
  const running = client;
  client = undefined;
  if (running) {
    if (panel) panel.detach(running);
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
  panel = new RunsPanel(context);
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
