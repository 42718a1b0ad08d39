// Drives the VS Code extension's run and trace features outside VS Code, with
// the stand-in `vscode` module and language client of vscode_stub.js playing
// the Flowmetal language server's side of docs/lsp-protocol.md: the Run lens's
// arguments (asked through input boxes, each checked by the server as it is
// typed, remembered per entry; passed on by the client middleware),
// the Runs view built from `flowmetal/runs` and `flowmetal/trace` and kept up
// to date by `flowmetal/runUpdated` and `flowmetal/traceEvent`, the State view
// filled from `flowmetal/stateAt`, and the run actions.
//
// Usage: node vscode_runs.js CACHE_DIR EXTENSION_DIR
// Prints JSON: {"<step>": {...what was seen...}, ..., "events": [...]}; the
// pytest side checks it.
'use strict';

const path = require('path');
const { install, render } = require('./vscode_stub');

const [cacheDir, extensionDir] = process.argv.slice(2);
const env = install(cacheDir, extensionDir);
const { record, commands, views } = env;

const FILE = 'file:///work/demo.flow';
const at = (line, start, end) => ({
  uri: FILE,
  range: { start: { line, character: start }, end: { line, character: end } },
});

const RUN_MAIN = {
  id: '1956a58dc5864667', entry: 'demo/main', args: ['"ann"', '3'], status: 'running',
  started: '2026-11-28T12:25:39.792Z', updated: '2026-11-28T12:25:39.900Z', ended: null,
  result: null, error: null, uri: FILE, origin: FILE,
};
const RUN_NAP = {
  id: '2b7e0c11aa004d2e', entry: 'demo/nap', args: ['5'], status: 'waiting',
  started: '2026-11-28T12:26:00.000Z', updated: '2026-11-28T12:26:00.100Z', ended: null,
  result: null, error: null, uri: FILE, origin: FILE,
};
const MAIN_EVENTS = [
  { seq: 1, time: '2026-11-28T12:25:39.792Z', kind: 'run-started', step: null,
    data: { entry: 'demo/main', args: ['"ann"', '3'], code: 'f4d6', origin: '/work' }, location: at(7, 8, 12) },
  { seq: 2, time: '2026-11-28T12:25:39.800Z', kind: 'step-requested', step: 1,
    data: { endpoint: 'flowmetal.log/log!', args: { message: '"hi ann"' }, key: '1956a58dc5864667:1' },
    location: at(8, 4, 25) },
  { seq: 3, time: '2026-11-28T12:25:39.810Z', kind: 'step-completed', step: 1, data: { result: 'nil' },
    location: at(8, 4, 25) },
  { seq: 4, time: '2026-11-28T12:25:39.820Z', kind: 'step-requested', step: 2,
    data: { endpoint: 'flowmetal.time/sleep!', args: { d: '(duration 10 +milliseconds+)' }, key: '1956a58dc5864667:2' },
    location: at(5, 6, 47) },
];
const STATE_AT_4 = {
  runId: RUN_MAIN.id, seq: 4, kind: 'step-requested', step: 2, location: at(5, 6, 47),
  bindings: [{ name: 'n', type: 'int?', value: '3' }, { name: 'twice', type: 'int?', value: '6' }],
  stack: [
    { function: 'demo/helper', location: at(5, 6, 47),
      bindings: [{ name: 'n', type: 'int?', value: '3' }, { name: 'twice', type: 'int?', value: '6' }] },
    { function: 'demo/main', location: at(9, 7, 17),
      bindings: [{ name: 'who', type: 'str?', value: '"ann"' }, { name: 'n', type: 'int?', value: '3' }] },
  ],
  result: 'nil', value: null, error: null, via: 'replay',
};

// A run with tasks (fleet.flow's reboot-all, as its trace reads, with a task that
// fails and a signal received added), a child run of it, a run whose parent is
// not listed, and a run whose every event is task 0's.
const RUN_FLEET = {
  id: 'f1ee7f1ee7f1ee70', entry: 'fleet/reboot-all', args: [], status: 'completed',
  started: '2026-11-28T14:00:00.000Z', updated: '2026-11-28T14:00:00.500Z', ended: '2026-11-28T14:00:00.500Z',
  result: '["web-1 up" "web-2 up"]', error: null, uri: FILE, origin: FILE, parent: null,
};
const RUN_CHILD = {
  ...RUN_FLEET, id: 'c41dc41dc41dc41d', entry: 'fleet/reboot', args: ['"db-2"', '5'], result: '"db-2 up"',
  started: '2026-11-28T14:00:00.100Z', parent: RUN_FLEET.id,
};
const RUN_ORPHAN = {
  ...RUN_FLEET, id: '0a0a0a0a0a0a0a0a', entry: 'fleet/reboot', started: '2026-11-28T14:00:00.200Z',
  parent: 'ffffffffffffffff',
};
const RUN_SOLO = {
  ...RUN_FLEET, id: '5010501050105010', entry: 'demo/hello', result: '"hello"', started: '2026-11-28T14:00:00.300Z',
};
const fleetEvent = (seq, kind, step, task, data = {}) => ({
  seq, time: '2026-11-28T14:00:00.100Z', kind, step, data: { ...data, task }, location: at(6, 4, 35) });
const FLEET_EVENTS = [
  fleetEvent(1, 'run-started', null, 0, { entry: 'reboot-all', args: [] }),
  fleetEvent(2, 'step-requested', 1, 0, { endpoint: 'flowmetal.task/spawn!', args: { f: '#<fn fn>' } }),
  fleetEvent(3, 'task-spawned', 1, 0, { spawned: 1 }),
  fleetEvent(4, 'step-completed', 1, 0, { result: '#<task 1>' }),
  fleetEvent(6, 'task-spawned', 2, 0, { spawned: 2 }),
  fleetEvent(9, 'task-spawned', 3, 0, { spawned: 3 }),
  fleetEvent(11, 'step-requested', 4, 0, { endpoint: 'flowmetal.task/await-all!', args: { ts: '[#<task 2> #<task 3>]' } }),
  fleetEvent(13, 'log', 5, 1, { message: 'rebooting db-1' }),
  fleetEvent(16, 'timer-set', 6, 1, { due: 1795874460.122 }),
  fleetEvent(20, 'step-requested', 8, 2, { endpoint: 'flowmetal.time/sleep!', args: { d: '(duration 30 +milliseconds+)' } }),
  fleetEvent(21, 'signal-received', 9, 2, { name: 'go', body: { by: 'ann', hosts: [1, 2] }, signal: 1 }),
  fleetEvent(25, 'task-spawned', 10, 3, { spawned: 4 }),
  fleetEvent(26, 'task-failed', null, 4, { error: 'division by zero\n  at fleet/reboot', trace: [] }),
  fleetEvent(29, 'task-completed', null, 3, { result: '"web-2 up"' }),
  fleetEvent(32, 'task-completed', null, 2, { result: '"web-1 up"' }),
  fleetEvent(33, 'step-completed', 4, 0, { result: '["web-1 up" "web-2 up"]', waited: true }),
  fleetEvent(35, 'task-cancelled', null, 1),
  fleetEvent(37, 'run-completed', null, 0, { result: '["web-1 up" "web-2 up"]' }),
];
const SOLO_EVENTS = [
  fleetEvent(1, 'run-started', null, 0, { entry: 'hello', args: [] }),
  fleetEvent(2, 'run-completed', null, 0, { result: '"hello"' }),
];

class ResponseError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// The fake server's answers.
const traces = {
  [RUN_MAIN.id]: () => ({ run: RUN_MAIN, events: MAIN_EVENTS }),
};
let pendingTrace; // resolves a `flowmetal/trace` answer held back
let runsAnswer = () => [RUN_MAIN, RUN_NAP]; // `flowmetal/runs`, by its params
env.respond = (client, method, params) => {
  switch (method) {
    case 'flowmetal/runs':
      return runsAnswer(params);
    case 'flowmetal/trace': {
      const answer = traces[params.runId];
      if (answer === 'hold') return new Promise((resolve) => { pendingTrace = resolve; });
      if (!answer) throw new ResponseError(-32803, `no run ${params.runId}`);
      return answer();
    }
    case 'flowmetal/checkArgument':
      // As the server would: `n` takes digits only; `who` a string.
      if (params.param === 'n' && !/^\s*\d+\s*$/.test(params.text)) return { message: `\`n\` must be int?, not ${params.text}` };
      if (params.param === 'who' && !/^\s*".*"\s*$/.test(params.text)) return { message: `\`who\` must be str?, not ${params.text}` };
      return { message: null };
    case 'flowmetal/stateAt':
      if (params.runId === RUN_FLEET.id) return { ...STATE_AT_4, runId: RUN_FLEET.id, seq: params.seq };
      if (params.seq === 4) return STATE_AT_4;
      throw new ResponseError(-32803, `run ${params.runId} has events 1 to 4, not ${params.seq}`);
    case 'workspace/executeCommand':
      if (params.command === 'flowmetal.cancel') return { runId: params.arguments[0].runId, status: 'cancelling' };
      if (params.command === 'flowmetal.replay') {
        const diverges = params.arguments[0].runId === RUN_NAP.id;
        return {
          runId: params.arguments[0].runId, steps: 2, value: diverges ? null : '7', fault: null,
          divergence: diverges ? 'step 1 at demo.flow:4: replay calls flowmetal.time/sleep!, the log recorded http.request/post!' : null,
          lines: ['step 1 flowmetal.log/log! message="hi ann"', 'step 2 flowmetal.time/sleep! d=(duration 10 +milliseconds+)'],
          reproduces: !diverges,
        };
      }
      return null;
    default:
      return null;
  }
};

const report = {};
const since = (mark) => env.events.slice(mark);
const runsView = () => views['flowmetal.runs'];
const stateView = () => views['flowmetal.state'];
const client = () => env.clients[env.clients.length - 1];
const expandAll = (_, item) => item.collapsibleState === env.vscode.TreeItemCollapsibleState.Expanded;
const runs = () => render(runsView().provider);
// The Runs view with the runs of `ids` expanded (which reads their traces).
const runsExpanded = (...ids) => render(runsView().provider, undefined, (element) => ids.includes(element.id));

// The trees' change notices: a run id, or "root".
const changes = [];

// Calls the middleware as vscode-languageclient does for a server command,
// with `next` standing for the request to the server.
async function middleware(command, args, nextAnswer) {
  const calls = [];
  const next = async (name, nextArgs) => {
    calls.push({ command: name, args: nextArgs });
    if (nextAnswer instanceof Error) throw nextAnswer;
    return nextAnswer;
  };
  const answer = await client().clientOptions.middleware.executeCommand(command, args, next);
  return { answer: answer === undefined ? null : answer, nextCalls: calls };
}

// The extension's one-second redraw, run by hand (no timing in the tests).
const tickers = [];
global.setInterval = (fn) => {
  tickers.push(fn);
  return { unref() {} };
};
global.clearInterval = () => {};

async function main() {
  const extension = require(path.resolve(extensionDir, 'extension.js')); // the source, not the bundle
  const context = { subscriptions: [], asAbsolutePath: (p) => path.resolve(extensionDir, p), secrets: env.secrets,
    workspaceState: env.workspaceState };
  await extension.activate(context);
  runsView().provider.onDidChangeTreeData((element) => changes.push(element ? element.id || element.kind : 'root'));

  report.activate = {
    clientOptions: client().clientOptions,
    views: Object.keys(views),
    runs: await runs(),
    stateMessage: stateView().message,
  };

  // ▶ Run… on a function with required parameters: asks for them, in order.
  let mark = env.events.length;
  traces.c0ffee00c0ffee00 = () => ({
    run: { ...RUN_MAIN, id: 'c0ffee00c0ffee00', status: 'pending', started: '2026-11-28T12:30:00.000Z',
      updated: '2026-11-28T12:30:00.000Z' },
    events: [MAIN_EVENTS[0]],
  });
  const lens = {
    uri: FILE, entry: 'demo/main',
    params: [{ name: 'who', type: 'str?', optional: false }, { name: 'n', type: 'int?', optional: false }],
  };
  env.inputAnswers.push('"ann"', ' 3 ');
  report.runAsks = await middleware('flowmetal.run', [lens], { runId: 'c0ffee00c0ffee00' });
  report.runAsks.events = since(mark);
  report.runAsks.runs = await runs();
  report.runAsks.selection = runsView().selection;

  report.runAsks.remembered = env.workspaceState.get('flowmetal.lastArguments');

  // Escape at the second parameter goes back to the first; Escape there: nothing runs.
  mark = env.events.length;
  env.inputAnswers.push('"bob"', undefined, undefined);
  report.runEscaped = await middleware('flowmetal.run', [lens], { runId: 'never' });
  report.runEscaped.events = since(mark);

  // Back to the first, another answer, then on: the run gets the new one.
  mark = env.events.length;
  env.inputAnswers.push('"cy"', undefined, '"dee"', '4');
  report.runBack = await middleware('flowmetal.run', [lens], null);
  report.runBack.events = since(mark);
  report.runBack.remembered = env.workspaceState.get('flowmetal.lastArguments');

  // An optional parameter left empty takes its default (and is not passed); its default is shown.
  mark = env.events.length;
  env.inputAnswers.push('[+reboot+]', '');
  report.runOptional = await middleware('flowmetal.run', [{
    uri: FILE, entry: 'demo/restart',
    params: [{ name: 'steps', type: '[restart-step?]', optional: false },
      { name: 'host', type: 'str?', optional: true, default: '"localhost"' },
      { name: 'port', type: 'int?', optional: true, default: '8080' }],
  }], null);
  report.runOptional.events = since(mark);

  // ▶ Run on a function without required parameters: no questions.
  mark = env.events.length;
  report.runNoParams = await middleware('flowmetal.run', [{ uri: FILE, entry: 'demo/hello', params: [], args: [] }], null);
  report.runNoParams.events = since(mark);

  // The server refuses: its message is shown.
  mark = env.events.length;
  env.inputAnswers.push('3', '"ann"');
  report.runRefused = await middleware('flowmetal.run', [lens], new ResponseError(
    -32803, 'argument `who` of `main` must be str?, not 3'));
  report.runRefused.events = since(mark);

  // Live updates: a run changes status, a new run appears, events come in.
  mark = env.events.length;
  changes.length = 0;
  const delivered = [];
  // Still waiting, logged more: only its item is redrawn.
  delivered.push(client().notify('flowmetal/runUpdated', { ...RUN_NAP, updated: '2026-11-28T12:26:03.000Z' }));
  delivered.push(client().notify('flowmetal/runUpdated', { ...RUN_NAP, status: 'completed', result: '5',
    updated: '2026-11-28T12:26:05.000Z', ended: '2026-11-28T12:26:05.000Z' }));
  delivered.push(client().notify('flowmetal/runUpdated', { ...RUN_NAP, id: '3d3d3d3d3d3d3d3d', status: 'failed',
    error: 'no such host: nowhere\n  at demo/nap', started: '2026-11-28T12:40:00.000Z',
    updated: '2026-11-28T12:40:01.000Z', ended: '2026-11-28T12:40:01.000Z' }));
  // An event of a run whose trace is not read yet: `flowmetal/trace` will bring it.
  delivered.push(client().notify('flowmetal/traceEvent', { runId: RUN_NAP.id, event: MAIN_EVENTS[0] }));
  report.live = { delivered, changes: [...changes], runs: await runs() };
  changes.length = 0;
  report.live.expanded = await runsExpanded(RUN_MAIN.id);
  // The next event of the (now read) run, and one it already has.
  client().notify('flowmetal/traceEvent', { runId: RUN_MAIN.id, event: {
    seq: 5, time: '2026-11-28T12:25:39.830Z', kind: 'log', step: 3,
    data: { message: 'slept\nwell' }, location: at(6, 4, 20) } });
  client().notify('flowmetal/traceEvent', { runId: RUN_MAIN.id, event: MAIN_EVENTS[3] });
  client().notify('flowmetal/runUpdated', { ...RUN_MAIN, status: 'completed', result: '7',
    updated: '2026-11-28T12:25:40.000Z', ended: '2026-11-28T12:25:40.000Z' });
  report.live.afterEvents = await runsExpanded(RUN_MAIN.id);
  report.live.changesAfterEvents = [...changes];
  report.live.events = since(mark);

  // Events that come while the trace is being read are kept.
  traces['3d3d3d3d3d3d3d3d'] = 'hold';
  const reading = runsExpanded('3d3d3d3d3d3d3d3d');
  await new Promise((resolve) => setImmediate(resolve));
  client().notify('flowmetal/traceEvent', { runId: '3d3d3d3d3d3d3d3d', event: {
    seq: 3, time: '2026-11-28T12:40:01.000Z', kind: 'run-failed', step: 1,
    data: { error: 'no such host: nowhere\n  at demo/nap', trace: [] }, location: at(3, 4, 30) } });
  // Its run as the trace read it, older than the failure notified meanwhile.
  pendingTrace({ run: { ...RUN_NAP, id: '3d3d3d3d3d3d3d3d', status: 'running', started: '2026-11-28T12:40:00.000Z',
    updated: '2026-11-28T12:40:00.500Z' }, events: [
    { seq: 1, time: '2026-11-28T12:40:00.000Z', kind: 'run-started', step: null,
      data: { entry: 'demo/nap', args: ['5'] }, location: at(3, 8, 11) },
    { seq: 2, time: '2026-11-28T12:40:00.500Z', kind: 'step-requested', step: 1,
      data: { endpoint: 'http.request/get!', args: { url: '"http://nowhere"' } }, location: at(3, 4, 30) },
  ] });
  await reading;
  report.raced = await runsExpanded('3d3d3d3d3d3d3d3d');

  // Clicking an event: its source, and the state there.
  mark = env.events.length;
  const [mainRun] = (await runsExpanded(RUN_MAIN.id)).filter((node) => node.id === `run:${RUN_MAIN.id}`);
  const sleep = mainRun.children.find((node) => node.label.startsWith('#4 '));
  await env.vscode.commands.executeCommand(sleep.command.command, ...sleep.command.arguments);
  report.showEvent = {
    events: since(mark),
    state: await render(stateView().provider, undefined, expandAll),
    description: stateView().description,
    message: stateView().message,
  };
  // A click selects the item and runs its command: the state is read once.
  mark = env.events.length;
  const hello = mainRun.children.find((node) => node.label.startsWith('#2 '));
  runsView().select([hello.command.arguments[0]]);
  await env.vscode.commands.executeCommand(hello.command.command, ...hello.command.arguments);
  report.selectAndClick = { events: since(mark) };
  // The arrow keys: selecting the next event shows it.
  mark = env.events.length;
  runsView().select([sleep.command.arguments[0]]);
  await new Promise((resolve) => setImmediate(resolve));
  report.selectNext = { events: since(mark), description: stateView().description };
  // A frame of the state goes to its source.
  mark = env.events.length;
  const main = report.showEvent.state.find((node) => node.label === 'demo/main');
  await env.vscode.commands.executeCommand(main.command.command, ...main.command.arguments);
  report.showEvent.frameEvents = since(mark);

  // An event the server has no state for: the State view says why.
  mark = env.events.length;
  const log = mainRun.children.find((node) => node.label.startsWith('#5 '));
  await env.vscode.commands.executeCommand(log.command.command, ...log.command.arguments);
  report.noState = { events: since(mark), state: await render(stateView().provider), message: stateView().message };

  // The Trace lens: the Runs view on that entry's runs, without asking the server.
  mark = env.events.length;
  report.showRuns = await middleware('flowmetal.showRuns', [{ uri: FILE, entry: 'demo/nap' }], 'from the server');
  report.showRuns.events = since(mark);
  report.showRuns.runs = await runs();
  report.showRuns.description = runsView().description;
  mark = env.events.length;
  await commands['flowmetal.runs.showAll']();
  report.showAll = { events: since(mark), runs: await runs(), description: runsView().description };
  report.showRunsNone = await middleware('flowmetal.showRuns', [{ uri: FILE, entry: 'demo/never' }], null);
  report.showRunsNone.message = runsView().message;
  await commands['flowmetal.runs.showAll']();

  // Other server commands go on to the server untouched.
  report.passThrough = await middleware('flowmetal.cancel', [{ runId: RUN_NAP.id }], { runId: RUN_NAP.id, status: 'completed' });

  // Run actions.
  const napElement = { kind: 'run', id: RUN_NAP.id };
  const mainElement = { kind: 'run', id: RUN_MAIN.id };
  mark = env.events.length;
  report.cancel = { answer: await commands['flowmetal.runs.cancel'](napElement), events: since(mark) };
  mark = env.events.length;
  report.replay = { answer: await commands['flowmetal.runs.replay'](mainElement), events: since(mark) };
  mark = env.events.length;
  env.messageAnswers.push('Show Steps');
  report.replayDiverges = { answer: await commands['flowmetal.runs.replay'](napElement), events: since(mark) };
  report.replayOutput = env.outputs.map((channel) => ({ name: channel.name, lines: channel.lines }));

  // Changed settings (another store, say): the server gets them, the runs are listed again.
  mark = env.events.length;
  await env.changeSettings({ 'flowmetal.store': 'other.db' });
  report.settingsChanged = { events: since(mark) };

  // Refresh: the runs listed again, the expanded ones read again.
  mark = env.events.length;
  await commands['flowmetal.runs.refresh']();
  report.refresh = { events: since(mark), runs: await runsExpanded(RUN_MAIN.id) };
  report.refresh.requests = since(mark).filter((e) => e.kind === 'request').map((e) => e.method);

  // After a restart, only the new client's notifications count.
  const old = client();
  await commands['flowmetal.restartServer']();
  report.restart = {
    clients: env.clients.length,
    oldDelivers: old.notify('flowmetal/runUpdated', { ...RUN_NAP, id: 'feedfeedfeedfeed' }),
    newDelivers: client().notify('flowmetal/runUpdated', { ...RUN_NAP, id: 'beefbeefbeefbeef', entry: 'demo/late' }),
  };
  report.restart.runs = await runs();

  // A run the server does not drive (an untrusted store's) says so, until it is unblocked.
  const blocked = { ...RUN_NAP, id: 'b10cb10cb10cb10c', status: 'pending', updated: '2026-11-28T13:00:00.000Z',
    blocked: 'the store is not trusted: the editor drives only the runs started from it' };
  client().notify('flowmetal/runUpdated', blocked);
  report.blocked = { runs: await runs() };
  client().notify('flowmetal/runUpdated', { ...blocked, blocked: null });
  report.blocked.unblocked = await runs();

  // A run waiting on an endpoint no live process serves says so, until a connector for it runs.
  const unserved = { ...RUN_NAP, id: '5e4e5e4e5e4e5e4e', status: 'waiting', updated: '2026-11-28T13:01:00.000Z',
    unserved: ['acme.billing/charge!'] };
  client().notify('flowmetal/runUpdated', unserved);
  report.unserved = { runs: await runs() };
  client().notify('flowmetal/runUpdated', { ...unserved, unserved: [] });
  report.unserved.served = await runs();

  // A signal received: its name and body, on one line.
  const { describeEvent } = require(path.join(extensionDir, 'runs.js'));
  report.signal = describeEvent({ seq: 9, kind: 'signal-received', step: 3,
    data: { name: 'approve', body: { by: 'ann', ok: true }, signal: 1, sent: 1795000000.5 } });

  // A run with tasks: its own events, then one item per task with that task's events
  // and its life; a child run (`parent`) under its parent; a run whose events all
  // belong to task 0 as flat as one without `task`.
  mark = env.events.length;
  traces[RUN_FLEET.id] = () => ({ run: RUN_FLEET, events: FLEET_EVENTS });
  traces[RUN_SOLO.id] = () => ({ run: RUN_SOLO, events: SOLO_EVENTS });
  for (const run of [RUN_FLEET, RUN_CHILD, RUN_ORPHAN, RUN_SOLO]) client().notify('flowmetal/runUpdated', run);
  const withTasks = (...ids) => render(runsView().provider, undefined,
    (element) => element.kind === 'task' || (element.kind === 'run' && ids.includes(element.id)));
  report.tasks = { runs: await withTasks(RUN_FLEET.id, RUN_SOLO.id) };
  const fleetNode = report.tasks.runs.find((node) => node.id === `run:${RUN_FLEET.id}`);
  // The state at an event of task 2, and where that event sits in the tree.
  const web1 = fleetNode.children.find((node) => node.label === 'task 2').children
    .find((node) => node.label.startsWith('#20 '));
  await env.vscode.commands.executeCommand(web1.command.command, ...web1.command.arguments);
  report.tasks.stateDescription = stateView().description;
  const provider = runsView().provider;
  const parentOf = (element) => {
    const parent = provider.getParent(element);
    return parent ? { kind: parent.kind, id: parent.id, task: parent.task } : null;
  };
  report.tasks.parents = {
    taskEvent: parentOf(web1.command.arguments[0]),
    ownEvent: parentOf({ kind: 'event', runId: RUN_FLEET.id, seq: 3 }),
    task: parentOf({ kind: 'task', runId: RUN_FLEET.id, task: 2 }),
    child: parentOf({ kind: 'run', id: RUN_CHILD.id }),
    orphan: parentOf({ kind: 'run', id: RUN_ORPHAN.id }),
  };
  // Live: a task spawned after the trace was read gets its item; its events go in it.
  client().notify('flowmetal/traceEvent', { runId: RUN_FLEET.id, event: {
    seq: 38, time: '2026-11-28T14:00:01.000Z', kind: 'task-spawned', step: 12,
    data: { spawned: 5, task: 0 }, location: at(10, 16, 54) } });
  client().notify('flowmetal/traceEvent', { runId: RUN_FLEET.id, event: {
    seq: 39, time: '2026-11-28T14:00:01.000Z', kind: 'log', step: 13,
    data: { message: 'late', task: 5 }, location: at(6, 4, 35) } });
  report.tasks.live = await withTasks(RUN_FLEET.id);
  report.tasks.events = since(mark);

  // The filter: status, entry and words; the view says which; a wrong status is refused.
  mark = env.events.length;
  env.inputAnswers.push('status:completed,failed ann');
  report.filter = { shown: await commands['flowmetal.runs.filter'](), runs: await runs(),
    description: runsView().description, message: runsView().message };
  env.inputAnswers.push('status:bogus');
  report.filter.bad = (await commands['flowmetal.runs.filter']()) === undefined;
  report.filter.after = runsView().description;
  report.filter.events = since(mark);
  await commands['flowmetal.runs.showAll']();

  // Each second the active runs are redrawn (how long they have run and waited).
  changes.length = 0;
  for (const tick of tickers) tick();
  report.ticks = [...changes];

  // Stepping with the keyboard: the next event of the run, across its task lanes.
  mark = env.events.length;
  runsView().select([{ kind: 'event', runId: RUN_FLEET.id, seq: 11 }]);
  await provider.shown.done;
  await commands['flowmetal.runs.nextEvent']();
  const nextSelected = runsView().selection;
  await commands['flowmetal.runs.nextEvent']();
  await commands['flowmetal.runs.previousEvent']();
  await commands['flowmetal.runs.previousEvent']();
  report.stepping = { events: since(mark), nextSelected, selection: runsView().selection };

  // A run selected: the State view shows its latest state, and follows it.
  mark = env.events.length;
  runsView().select([{ kind: 'run', id: RUN_MAIN.id }]);
  await provider.shown.done;
  report.follow = { events: since(mark), description: stateView().description };
  mark = env.events.length;
  client().notify('flowmetal/traceEvent', { runId: RUN_MAIN.id, event: {
    seq: 6, time: '2026-11-28T12:25:40.000Z', kind: 'run-completed', step: null,
    data: { result: '7' }, location: at(7, 8, 12) } });
  for (let i = 0; i < 100 && !since(mark).some((e) => e.kind === 'request'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await provider.shown.done;
  report.follow.after = { events: since(mark), description: stateView().description };

  // A run seen running fails: a notification offers its failing event, which is then
  // selected, shown, and its line marked red.
  traces.fa11fa11fa11fa11 = () => ({ run: { ...RUN_MAIN, id: 'fa11fa11fa11fa11', status: 'failed' }, events: [
    MAIN_EVENTS[0],
    { seq: 2, time: '2026-11-28T12:25:41.000Z', kind: 'run-failed', step: null,
      data: { error: 'division by zero\n  at demo/main', trace: [] }, location: at(9, 4, 20) }] });
  client().notify('flowmetal/runUpdated', { ...RUN_MAIN, id: 'fa11fa11fa11fa11', status: 'running',
    updated: '2026-11-28T12:25:40.000Z' });
  mark = env.events.length;
  env.messageAnswers.push('Show Failing Event');
  client().notify('flowmetal/runUpdated', { ...RUN_MAIN, id: 'fa11fa11fa11fa11', status: 'failed',
    error: 'division by zero\n  at demo/main', updated: '2026-11-28T12:25:41.000Z' });
  await provider.announced;
  report.failure = { events: since(mark), selection: runsView().selection, description: stateView().description };
  // A failed run listed at the start is not announced.
  mark = env.events.length;
  client().notify('flowmetal/runUpdated', { ...RUN_MAIN, id: 'fa11fa11fa11fa12', status: 'failed',
    updated: '2026-11-28T12:25:41.000Z' });
  report.failure.quiet = since(mark);

  // A new run from the editor: the one started before it folds, the State view turns to it.
  traces.c0ffee01c0ffee01 = () => ({
    run: { ...RUN_MAIN, id: 'c0ffee01c0ffee01', status: 'running', started: '2026-11-28T12:31:00.000Z' },
    events: [MAIN_EVENTS[0]] });
  mark = env.events.length;
  report.secondRun = await middleware('flowmetal.run', [{ ...lens, args: ['"bo"', '1'] }], { runId: 'c0ffee01c0ffee01' });
  await provider.shown.done;
  report.secondRun.events = since(mark);
  report.secondRun.description = stateView().description;

  // Values: records (with the field names the State gives), maps, lists, JSON bodies.
  const valueState = {
    runId: 'x', seq: 1, kind: 'step-completed', step: 1, location: null, via: 'replay', error: null, value: null,
    result: '"{\\"ok\\": true, \\"items\\": [1, 2]}"',
    records: { quote: ['sku', 'cents', 'currency'] },
    stack: [{ function: 'shop/total', location: null, bindings: [
      { name: 'q', type: 'quote?', value: '(quote "sku-1" 1250 "EUR")' },
      { name: 'prices', type: '(map? str? (list? int?))', value: '{"a" [1 2] "b" []}' },
      { name: 'odd', type: 'str?', value: '"unclosed [' },
    ] }],
  };
  const { stateElements } = require(path.join(extensionDir, 'runs.js'));
  const roots = stateElements(valueState);
  report.values = await render({ getChildren: (e) => (e ? e.children : roots), getTreeItem: (e) => e.item },
    undefined, () => true);

  // A store of many runs: the 1,000 started last are listed, and the view says so; a
  // filter on an entry asks the server for its older runs, which take their place in time.
  const two = (n) => String(n).padStart(2, '0');
  const many = Array.from({ length: 1000 }, (_, i) => ({ ...RUN_SOLO, id: `b${String(i).padStart(15, '0')}`,
    started: `2026-11-29T10:${two(Math.floor(i / 60))}:${two(i % 60)}.000Z` }));
  const OLD = { ...RUN_NAP, id: '01d01d01d01d01d0', entry: 'demo/old', status: 'failed',
    started: '2026-01-01T00:00:00.000Z' };
  runsAnswer = (params) => (params.entry === 'demo/old' ? [OLD] : many);
  mark = env.events.length;
  await provider.refresh();
  report.manyRuns = { listed: provider.order.length, message: runsView().message };
  const older = await provider.showRuns({ entry: 'demo/old' });
  report.manyRuns.older = older.map((run) => run.id);
  report.manyRuns.first = provider.order[0];
  report.manyRuns.filtered = runsView().message;
  report.manyRuns.requests = since(mark).filter((e) => e.kind === 'request' && e.method === 'flowmetal/runs')
    .map((e) => e.params);
  await provider.setFilter(undefined);
  runsAnswer = () => [RUN_MAIN, RUN_NAP];
  await provider.refresh();
  report.manyRuns.afterFewer = runsView().message === undefined ? null : runsView().message;

  await extension.deactivate();
  report.events = env.events;
  process.stdout.write(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
