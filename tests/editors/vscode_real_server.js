// The VS Code extension's run and trace features against the real Flowmetal
// language server: the stand-in `vscode` module of vscode_stub.js, and a
// language client that speaks LSP over stdio (vscode-jsonrpc) with the
// server the extension configures. The script opens a file, takes the Run
// lens the server gives, answers the argument boxes, waits for the run to
// finish live, opens its trace, clicks an event for the state there, replays
// the run, and follows the Trace lens.
//
// Usage: node vscode_real_server.js CACHE_DIR EXTENSION_DIR WORKSPACE PYTHON
//   WORKSPACE holds demo.flow; PYTHON runs `-m flowmetal lsp`.
// Prints JSON: {"<step>": {...what was seen...}}; the pytest side checks it.
'use strict';

const path = require('path');
const fs = require('fs');
const { spawn } = require('child_process');
const { pathToFileURL } = require('url');
const { install, render } = require('./vscode_stub');

const [cacheDir, extensionDir, workspace, python] = process.argv.slice(2);
const env = install(cacheDir, extensionDir);
const rpc = env.requireFromCache('vscode-jsonrpc/node');
const { views } = env;

const folderUri = pathToFileURL(workspace).href;
const fileUri = pathToFileURL(path.join(workspace, 'demo.flow')).href;
const notified = {};
let serverLog = '';

class StdioLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    this.serverOptions = serverOptions;
    this.clientOptions = clientOptions;
    this.handlers = new Map();
    env.clients.push(this);
  }

  onNotification(method, handler) {
    this.handlers.set(method, handler);
    return { dispose: () => this.handlers.delete(method) };
  }

  async start() {
    // Spawned as vscode-languageclient spawns an Executable.
    const { command, args: given, transport } = this.serverOptions.run;
    const { TransportKind } = env.realClient;
    if (transport !== undefined && transport !== TransportKind.stdio) throw new Error(`transport ${transport}`);
    const args = [...(given || []), ...(transport === TransportKind.stdio ? ['--stdio'] : [])];
    const childEnv = { ...process.env };
    for (const name of ['FLOWMETAL_STORE', 'FLOWMETAL_PUBLIC_URL', 'FLOWMETAL_TOKEN']) delete childEnv[name];
    this.proc = spawn(command, args, { cwd: workspace, env: childEnv, stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stderr.on('data', (chunk) => { serverLog += chunk; });
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    const connection = rpc.createMessageConnection(
      new rpc.StreamMessageReader(this.proc.stdout), new rpc.StreamMessageWriter(this.proc.stdin));
    this.connection = connection;
    connection.onNotification((method, params) => {
      notified[method] = (notified[method] || 0) + 1;
      const handler = this.handlers.get(method);
      if (handler) handler(params);
    });
    connection.onRequest((method) => { notified[method] = (notified[method] || 0) + 1; return null; }); // codeLens/refresh, registerCapability, ...
    connection.listen();
    this.initializeResult = await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: folderUri,
      workspaceFolders: [{ uri: folderUri, name: 'demo' }],
      capabilities: { workspace: { codeLens: { refreshSupport: true }, workspaceFolders: true } },
      initializationOptions: typeof this.clientOptions.initializationOptions === 'function'
        ? this.clientOptions.initializationOptions() : this.clientOptions.initializationOptions,
    });
    connection.sendNotification('initialized', {});
  }

  sendRequest(method, params) {
    return this.connection.sendRequest(method, params);
  }

  sendNotification(method, params) {
    return this.connection.sendNotification(method, params);
  }

  // What the language client does for a server command VS Code runs.
  executeCommand(command, args) {
    const next = (name, nextArgs) => this.sendRequest('workspace/executeCommand', { command: name, arguments: nextArgs });
    return this.clientOptions.middleware.executeCommand(command, args, next);
  }

  async stop() {
    if (!this.connection) return;
    try {
      await this.connection.sendRequest('shutdown');
      this.connection.sendNotification('exit');
    } catch (_) {
      // gone already
    }
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 15000, 'timeout'); });
    if ((await Promise.race([this.exited, timeout])) === 'timeout') this.proc.kill('SIGKILL');
    clearTimeout(timer);
    this.connection.dispose();
  }
}

env.LanguageClient = StdioLanguageClient;

const report = {};
const since = (mark) => env.events.slice(mark);
const runsView = () => views['flowmetal.runs'];
const stateView = () => views['flowmetal.state'];
const client = () => env.clients[env.clients.length - 1];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, test, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const value = await test();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function lenses() {
  return client().sendRequest('textDocument/codeLens', { textDocument: { uri: fileUri } });
}

async function main() {
  env.userSettings['flowmetal.server.path'] = python;
  env.userSettings['flowmetal.server.args'] = ['-m', 'flowmetal', 'lsp'];
  env.userSettings['flowmetal.store'] = 'runs/store.db';
  const extension = require(path.resolve(extensionDir, 'extension.js')); // the source, not the bundle
  const context = { subscriptions: [], asAbsolutePath: (p) => path.resolve(extensionDir, p), secrets: env.secrets,
    workspaceState: env.workspaceState };
  await extension.activate(context);
  try {
    await scenario();
  } finally {
    await extension.deactivate();
  }
  report.notified = notified;
  process.stdout.write(JSON.stringify(report));
}

async function scenario() {
  // The commands vscode-languageclient registers in VS Code, and so hands to the middleware.
  const provider = client().initializeResult.capabilities.executeCommandProvider;
  report.serverCommands = provider ? provider.commands : [];
  report.start = { runs: await render(runsView().provider), message: runsView().message };

  client().connection.sendNotification('textDocument/didOpen', {
    textDocument: { uri: fileUri, languageId: 'flowmetal', version: 1,
      text: fs.readFileSync(path.join(workspace, 'demo.flow'), 'utf8') },
  });
  const found = await until('the Run lenses', async () => {
    const all = await lenses();
    return all && all.some((lens) => lens.command && lens.command.command === 'flowmetal.run') ? all : undefined;
  });
  const runLens = found.find((lens) => lens.command.command === 'flowmetal.run'
    && lens.command.arguments[0].entry === 'demo/main').command;
  report.lens = runLens;

  // Escape: nothing is run.
  let mark = env.events.length;
  env.inputAnswers.push(undefined);
  report.escaped = { answer: (await client().executeCommand(runLens.command, runLens.arguments)) || null };
  report.escaped.events = since(mark);

  // A wrong argument: the server's message.
  mark = env.events.length;
  env.inputAnswers.push('3', '3');
  report.refused = { answer: (await client().executeCommand(runLens.command, runLens.arguments)) || null };
  report.refused.events = since(mark);

  // Run it.
  mark = env.events.length;
  env.inputAnswers.push('"ann"', '3');
  const answer = await client().executeCommand(runLens.command, runLens.arguments);
  report.run = { answer, events: since(mark), selection: runsView().selection };
  const runId = answer.runId;
  const runNode = (tree) => tree.find((node) => node.id === `run:${runId}`);
  const done = await until('the run to complete', async () => {
    const tree = await render(runsView().provider, undefined, (element) => element.id === runId);
    const node = runNode(tree);
    return node && node.description.startsWith('completed')
      && node.children.some((e) => e.label.endsWith('run-completed')) ? node : undefined;
  });
  report.run.node = done;

  // Click the sleep! call: its source, and the state there.
  const step = done.children.find((e) => / sleep! /.test(e.label));
  mark = env.events.length;
  await env.vscode.commands.executeCommand(step.command.command, ...step.command.arguments);
  report.state = {
    events: since(mark),
    tree: await render(stateView().provider, undefined,
      (_, item) => item.collapsibleState === env.vscode.TreeItemCollapsibleState.Expanded),
    description: stateView().description,
    message: stateView().message,
  };

  // The last event: the run's value.
  const last = done.children[done.children.length - 1];
  await env.vscode.commands.executeCommand(last.command.command, ...last.command.arguments);
  report.endState = { tree: await render(stateView().provider), description: stateView().description };

  // Replay it.
  mark = env.events.length;
  report.replay = { answer: await env.commands['flowmetal.runs.replay']({ kind: 'run', id: runId }) };
  report.replay.events = since(mark);

  // A run with tasks (fleet.flow's reboot-all): its own events, then a lane per task.
  const fleetUri = pathToFileURL(path.join(workspace, 'fleet.flow')).href;
  client().connection.sendNotification('textDocument/didOpen', {
    textDocument: { uri: fleetUri, languageId: 'flowmetal', version: 1,
      text: fs.readFileSync(path.join(workspace, 'fleet.flow'), 'utf8') },
  });
  const fleetLens = await until('the Run lens of reboot-all', async () => {
    const all = await client().sendRequest('textDocument/codeLens', { textDocument: { uri: fleetUri } });
    const lens = (all || []).find((l) => l.command && l.command.command === 'flowmetal.run'
      && l.command.arguments[0].entry === 'fleet/reboot-all');
    return lens ? lens.command : undefined;
  });
  const fleetRun = await client().executeCommand(fleetLens.command, fleetLens.arguments);
  report.tasks = await until('the run with tasks to complete', async () => {
    const tree = await render(runsView().provider, undefined,
      (element) => element.kind === 'task' || element.id === fleetRun.runId);
    const node = tree.find((n) => n.id === `run:${fleetRun.runId}`);
    return node && node.description.startsWith('completed')
      && node.children.some((e) => e.label.endsWith('run-completed')) ? node : undefined;
  });
  const web2 = report.tasks.children.find((n) => n.label === 'task 3').children
    .find((e) => / sleep! /.test(e.label));
  await env.vscode.commands.executeCommand(web2.command.command, ...web2.command.arguments);
  report.tasks.state = { tree: await render(stateView().provider), description: stateView().description };

  // The Trace lens, once the server counts the run.
  const traceLens = await until('the Trace lens to count the run', async () => {
    const lens = (await lenses()).find((l) => l.command.command === 'flowmetal.showRuns'
      && l.command.arguments[0].entry === 'demo/main');
    return lens && lens.command.title === 'Trace (1 run)' ? lens.command : undefined;
  });
  mark = env.events.length;
  const shown = await client().executeCommand(traceLens.command, traceLens.arguments);
  report.showRuns = {
    answer: shown, events: since(mark), runs: await render(runsView().provider),
    description: runsView().description,
  };
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  console.error(serverLog.slice(-4000));
  process.exit(1);
});
