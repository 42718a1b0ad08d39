// VS Code client for Flowmetal. It starts the Flowmetal language server
// (`flowmetal lsp`, over stdio) for Flowmetal documents and holds no language
// logic of its own: diagnostics, hover, completion, navigation and the rest
// all come from the server, and so do the runs and traces shown in the
// Flowmetal side bar (runs.js, docs/lsp-protocol.md). It also contributes the
// `flowmetal` debugger, which starts `flowmetal dap` (debug.js, docs/debugging.md).
// The token of a remote `flowmetal serve` is kept in SecretStorage (token.js).
'use strict';

const loaded = Date.now(); // before the bundle's modules: the start-up trace's first step
const vscode = require('vscode');
const { LanguageClient, RevealOutputChannelOn } = require('vscode-languageclient/node');
const { RunsPanel } = require('./runs');
const { Debugger } = require('./debug');
const { ApiToken } = require('./token');
const { StartupTrace } = require('./startup');

const required = Date.now(); // the modules above evaluated

let client;
let panel;
let apiToken;
let ready = false; // the client in `client` has started
let trace;
let tokenRead; // settles once the API token has been read from secret storage (and moved there)

// The language client, whose server is spawned at once but is sent `initialize`
// only once the API token has been read: the server's Python starts (half a
// second and more) while secret storage answers (a round trip to the window, a
// few hundred milliseconds in a browser), and `initialize` never carries a
// token about to change.
class FlowmetalClient extends LanguageClient {
  async createMessageTransports(encoding) {
    const transports = await super.createMessageTransports(encoding);
    await tokenRead;
    return transports;
  }
}

function serverCommand() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const command = config.get('server.path') || 'flowmetal';
  const args = config.get('server.args');
  return { command, args: Array.isArray(args) ? args.map(String) : ['lsp'] };
}

// The server's run settings: the store, and the `flowmetal serve` that drives
// runs (with its token, from secret storage). Unset ones are null: the
// server's defaults apply.
function runSettings() {
  const config = vscode.workspace.getConfiguration('flowmetal');
  const setting = (key) => {
    const value = config.get(key);
    return typeof value === 'string' && value.trim() ? value.trim() : null;
  };
  return { store: setting('store'), serve: setting('serve'), token: apiToken ? apiToken.value : null };
}

// Trust. A workspace's store may hold runs someone else left there (a cloned
// repository can ship one): the server drives them only when VS Code trusts
// the workspace, as it says at the start (`trusted` in initializationOptions)
// and with `flowmetal.trust` when the user grants trust later. Trust never
// travels with the settings, which a workspace's own settings file can write.
async function grantTrust(running) {
  await running.sendRequest('workspace/executeCommand', { command: 'flowmetal.trust', arguments: [{ trusted: true }] });
}

// Changed run settings go to the server as a `flowmetal` section
// (workspace/didChangeConfiguration), these keys only. The server drops trust
// when they move it to another store: it is given again for the new one.
async function sendRunSettings() {
  const running = client;
  if (!running || !ready) return;
  await running.sendNotification('workspace/didChangeConfiguration', { settings: { flowmetal: runSettings() } });
  if (vscode.workspace.isTrusted) await grantTrust(running);
  // Another store (or serve) holds other runs.
  if (client === running) await panel.refresh();
}

async function startClient() {
  const { command, args } = serverCommand();
  // No `transport`: the server is spawned with its stdio as the connection. Given
  // `TransportKind.stdio`, vscode-languageclient would add a `--stdio` argument,
  // which `flowmetal lsp` does not take.
  const executable = { command, args };
  let given = null; // the initializationOptions sent
  const serverOptions = { run: executable, debug: executable };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'flowmetal' },
      { scheme: 'untitled', language: 'flowmetal' },
    ],
    // The run settings, and whether the workspace is trusted, as they are when
    // `initialize` is sent (the token read by then: FlowmetalClient); later
    // changes of the settings are sent by sendRunSettings. `debugLens`: this
    // client handles the Debug lens's `flowmetal.debug` command (debug.js).
    initializationOptions: () => {
      given = { ...runSettings(), trusted: vscode.workspace.isTrusted === true, debugLens: true };
      return given;
    },
    // Failed requests are logged in the output channel; the run commands show
    // the server's own message instead of a generic notification.
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware: {
      executeCommand: (name, commandArgs, next) => panel.executeCommand(name, commandArgs, next),
      handleDiagnostics: (uri, diagnostics, next) => {
        trace.mark('diagnostics');
        next(uri, diagnostics);
      },
    },
  };
  ready = false;
  const started = client = new FlowmetalClient('flowmetal', 'Flowmetal Language Server', serverOptions, clientOptions);
  panel.attach(started);
  if (trace.on) trace.attach(started.outputChannel);
  try {
    const starting = started.start();
    trace.mark('client');
    await starting;
  } catch (err) {
    panel.detach(started);
    vscode.window.showErrorMessage(
      `Flowmetal: could not start the language server \`${[command, ...args].join(' ')}\` ` +
        `(${err && err.message ? err.message : err}). ` +
        'Install Flowmetal or set "flowmetal.server.path".'
    );
    return;
  }
  if (client !== started) return;
  trace.mark('initialized');
  ready = true;
  // Settings changed, or trust granted, while it was starting.
  const now = runSettings();
  if (Object.keys(now).some((key) => now[key] !== given[key])) return sendRunSettings();
  if (vscode.workspace.isTrusted === true && !given.trusted) await grantTrust(started);
  await panel.refresh();
}

async function stopClient() {
  const running = client;
  client = undefined;
  ready = false;
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
  trace = new StartupTrace(loaded);
  trace.mark('required', required);
  trace.mark('activate');
  panel = new RunsPanel(context);
  apiToken = new ApiToken(context, sendRunSettings);
  // Read while the server starts; a token that cannot be read is none (and said so).
  tokenRead = apiToken.load()
    .then(() => apiToken.migrate())
    .catch((err) => {
      vscode.window.showWarningMessage('Flowmetal: could not read the API token from secret storage ' +
        `(${err && err.message ? err.message : err}): runs on a serve are asked for without it.`);
    })
    .finally(() => trace.mark('token'));
  new Debugger(context, panel); // eslint-disable-line no-new -- it registers itself in context
  context.subscriptions.push(
    vscode.commands.registerCommand('flowmetal.restartServer', restartClient),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      // A token given in the settings again goes to secret storage first.
      const moved = event.affectsConfiguration('flowmetal.token') && (await apiToken.migrate());
      if (event.affectsConfiguration('flowmetal.server')) {
        return restartClient();
      }
      if (moved || ['flowmetal.store', 'flowmetal.serve'].some((key) => event.affectsConfiguration(key))) {
        return sendRunSettings();
      }
      return undefined;
    }),
    vscode.workspace.onDidGrantWorkspaceTrust(async () => {
      // The workspace's own settings now count: a token in them moves too.
      // (sendRunSettings grants the trust along with them.)
      if (await apiToken.migrate()) return sendRunSettings();
      if (client && ready) await grantTrust(client);
      return undefined;
    })
  );
  await startClient();
}

function deactivate() {
  return stopClient();
}

module.exports = { activate, deactivate };
