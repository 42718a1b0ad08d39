// Running and tracing Flowmetal programs from VS Code: the Run lens (args.js
// asks for its arguments), the "Runs" and "State" views of the Flowmetal side
// bar, and the run actions (cancel, replay, refresh, filter, stepping through events).
//
// Everything shown comes from the language server, through the protocol of
// docs/lsp-protocol.md: the `flowmetal/runs`, `flowmetal/trace` and
// `flowmetal/stateAt` requests, the `flowmetal/runUpdated` and
// `flowmetal/traceEvent` notifications, and the `flowmetal.*` commands. Nothing
// here evaluates Flowmetal: arguments are passed on as the user typed them, and
// values are shown as the server wrote them, split at their brackets to be
// unfolded (values.js).
//
// A run's events are drawn as rows (rows.js): a step's request and its
// completion are one row, with its duration and result, and so are a timer
// and its firing; times are relative to the run's start. Tasks and child runs
// are drawn from the same messages: each event's `task` (0 for the run's own
// code) puts the events of a run with tasks into lanes, a "task N" item per
// spawned task after the run's own rows; a run summary's `parent` nests a
// child run under the run that started it.
//
// The event shown is marked in its editor as a debugger marks the current
// line (the line of a fault in red: highlight.js), and failed runs and their
// failing events are red in the list (a FileDecorationProvider colours the
// labels of the items it is given a `flowmetal-runs:` resourceUri for).
'use strict';

const vscode = require('vscode');
const rows = require('./rows');
const values = require('./values');
const { Highlighter } = require('./highlight');
const { askArguments } = require('./args');

const RUNS_VIEW = 'flowmetal.runs';
const STATE_VIEW = 'flowmetal.state';
const CONTAINER_COMMAND = 'workbench.view.extension.flowmetal';
const COLLAPSE_COMMAND = `workbench.actions.treeView.${RUNS_VIEW}.collapseAll`;
const FILTERED_CONTEXT = 'flowmetal.runsFiltered';
const DECORATION_SCHEME = 'flowmetal-runs';

const ACTIVE = new Set(['pending', 'running', 'waiting']);
// The runs listed at first: those started last. A store shared by a fleet holds many more;
// a status: or entry: filter asks the server for the older ones that pass it.
const LIST_LIMIT = 1000;
const FAILS = new Set(['run-failed', 'task-failed']);

// Codicon and theme colour of each run status.
const STATUS_ICONS = {
  pending: ['clock'],
  running: ['sync~spin'],
  waiting: ['watch'],
  completed: ['pass', 'testing.iconPassed'],
  failed: ['error', 'testing.iconFailed'],
  cancelled: ['circle-slash', 'disabledForeground'],
};

const EVENT_ICONS = {
  'run-started': 'play',
  'step-requested': 'arrow-right',
  'step-completed': 'check',
  'timer-set': 'watch',
  'timer-fired': 'bell',
  'timer-cancelled': 'bell-slash',
  log: 'output',
  'signal-received': 'mail',
  'run-completed': 'pass',
  'run-failed': 'error',
  'run-cancelled': 'circle-slash',
  'task-spawned': 'repo-forked',
  'task-completed': 'pass',
  'task-failed': 'error',
  'task-cancelled': 'circle-slash',
};

// How a task ended: its last event's kind, and the status it reads as.
const TASK_ENDS = {
  'task-completed': 'completed',
  'task-failed': 'failed',
  'task-cancelled': 'cancelled',
};

const NO_STATE = 'Select a run or one of its events to see the run\'s state there.';
const FILTER_HELP = 'status:failed,waiting (or active)  entry:demo/main  and words to find in the entry, id, ' +
  'arguments, result or error. Empty: every run.';

// ------------------------------------------------------------------ formatting

const { clock } = rows;

function errorMessage(err) {
  return err && err.message ? err.message : String(err);
}

function shortId(id) {
  return String(id).slice(0, 8);
}

function firstLine(text) {
  return String(text == null ? '' : text).split('\n', 1)[0];
}

function shown(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function formatArgs(args) {
  if (Array.isArray(args)) return args.map(shown).join(' ');
  if (args && typeof args === 'object') {
    return Object.entries(args).map(([name, value]) => `${name}=${shown(value)}`).join(' ');
  }
  return args == null ? '' : shown(args);
}

// An endpoint's own name, without its package: `sleep!` for `flowmetal.time/sleep!`.
function endpointName(endpoint) {
  return String(endpoint || '').split('/').pop();
}

// The one-line summary of an event: what was called, logged or answered.
function describeEvent(event) {
  const data = event.data || {};
  switch (event.kind) {
    case 'run-started':
      return [data.entry, formatArgs(data.args)].filter(Boolean).join(' ');
    case 'step-requested':
      return [data.endpoint, formatArgs(data.args)].filter(Boolean).join(' ');
    case 'step-completed':
    case 'run-completed':
      return data.result == null ? '' : `→ ${firstLine(shown(data.result))}`;
    case 'log':
      return firstLine(data.message);
    case 'timer-set':
      return data.due == null ? '' : `due ${typeof data.due === 'number' ? clock(data.due * 1000) : shown(data.due)}`;
    case 'run-failed':
    case 'task-failed':
      return firstLine(data.error);
    case 'task-spawned':
      return data.spawned == null ? '' : `→ task ${data.spawned}`;
    case 'task-completed':
      return data.result == null ? '' : `→ ${firstLine(shown(data.result))}`;
    case 'signal-received':
      return `${data.name} ← ${firstLine(JSON.stringify(data.body))}`;
    default:
      return '';
  }
}

// A row's label: `#4 sleep! (duration 10 +milliseconds+)` for a step (the
// endpoint's own name and the arguments' values), `#16 timer` for a timer,
// `#N kind` for the rest.
function rowLabel(row) {
  const event = row.head;
  const data = event.data || {};
  if (event.kind === 'step-requested' && row.end !== null) {
    const args = data.args && typeof data.args === 'object' && !Array.isArray(data.args)
      ? Object.values(data.args).map(shown).join(' ') : formatArgs(data.args);
    return [`#${event.seq} ${endpointName(data.endpoint) || 'step'}`, args].filter(Boolean).join(' ');
  }
  if (event.kind === 'timer-set' && row.end !== null) return `#${event.seq} timer`;
  return `#${event.seq} ${event.kind}`;
}

// A row's description: what it came to and how long that took, or how long it
// has waited; then when it happened, from the run's start (`start`).
function rowDescription(row, start, now) {
  const event = row.head;
  const at = event.kind === 'run-started' ? '' : rows.offset(event.time, start);
  let what;
  if (row.end === null) {
    what = describeEvent(event);
  } else if (event.kind === 'timer-set') {
    const set = rows.ms(event.time);
    if (!row.end) what = rows.dueText(row, now);
    else what = `${row.end.kind === 'timer-fired' ? 'fired' : 'cancelled'} after ${rows.duration(rows.ms(row.end.time) - set)}`;
  } else if (!row.end) {
    what = `waiting ${rows.duration(now - rows.ms(event.time))}`;
  } else {
    const result = (row.end.data || {}).result;
    what = [result == null ? '' : `→ ${firstLine(shown(result))}`, rows.duration(rows.ms(row.end.time) - rows.ms(event.time))]
      .filter(Boolean).join(' · ');
  }
  return [what, at].filter(Boolean).join(' · ');
}

function eventLines(event, start) {
  const lines = [`#${event.seq} ${event.kind}` + (event.step != null ? ` (step ${event.step})` : '')];
  if (event.time) lines.push(`${rows.localTime(event.time)}${start ? ` (${rows.offset(event.time, start)} from the start)` : ''}`);
  for (const [key, value] of Object.entries(event.data || {})) {
    if (key === 'args' && value && typeof value === 'object' && !Array.isArray(value)) {
      lines.push('args:', ...Object.entries(value).map(([name, arg]) =>
        `  ${name} = ${typeof arg === 'string' ? values.pretty(arg).replace(/\n/g, '\n  ') : JSON.stringify(arg)}`));
    } else if (key === 'result' && typeof value === 'string') {
      lines.push(`result: ${values.pretty(value)}`);
    } else {
      lines.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}`);
    }
  }
  return lines;
}

function rowTooltip(row, start) {
  const lines = eventLines(row.head, start);
  if (row.end) lines.push('', ...eventLines(row.end, start));
  else if (row.end === undefined) lines.push('', 'not answered yet');
  return lines.join('\n');
}

function runTooltip(run) {
  const lines = [`${run.entry} ${formatArgs(run.args)}`.trim(), `run ${run.id}`, `status: ${run.status}`];
  if (run.started) lines.push(`started: ${rows.localTime(run.started)}`);
  if (run.ended) lines.push(`ended: ${rows.localTime(run.ended)} (${rows.duration(rows.ms(run.ended) - rows.ms(run.started))})`);
  if (run.result != null) lines.push(`result: ${values.pretty(run.result)}`);
  if (run.error != null) lines.push(`error: ${run.error}`);
  if (run.origin) lines.push(`from: ${run.origin}`);
  if (run.parent) lines.push(`child run of ${run.parent}`);
  if (run.blocked) lines.push(`not run here: ${run.blocked}`);
  if (run.unserved && run.unserved.length) lines.push(unservedNote(run));
  return lines.join('\n');
}

// A run's description: its status, how long it took (or has taken so far),
// and when it started and ended.
function runDescription(run, now) {
  const unserved = run.unserved && run.unserved.length ? `no live process serves ${run.unserved.join(', ')}` : '';
  const start = rows.ms(run.started);
  const end = run.ended ? rows.ms(run.ended) : ACTIVE.has(run.status) ? now : NaN;
  const span = run.ended ? `${clock(run.started)}–${clock(run.ended)}` : clock(run.started);
  return [run.status, run.blocked ? 'not trusted' : '', unserved, rows.duration(end - start), span]
    .filter(Boolean).join(' · ');
}

// The task an event belongs to: 0, the run's own code, when the event says none.
function taskOf(event) {
  const task = event && event.data ? event.data.task : undefined;
  return Number.isInteger(task) ? task : 0;
}

// The lanes of a run's events (sorted by seq): each task's events, and its life
// (the event that spawned it, the one that ended it). Null for a run without tasks.
function lanesOf(events) {
  const lanes = new Map();
  const lane = (task) => {
    if (!lanes.has(task)) lanes.set(task, { task, seqs: [], spawn: undefined, end: undefined });
    return lanes.get(task);
  };
  lane(0);
  for (const event of events) {
    const own = lane(taskOf(event));
    own.seqs.push(event.seq);
    if (TASK_ENDS[event.kind]) own.end = event;
    if (event.kind === 'task-spawned' && Number.isInteger((event.data || {}).spawned)) {
      lane(event.data.spawned).spawn = event;
    }
  }
  return lanes.size > 1 ? lanes : null;
}

// What a task's item says of its life: how it ended (or that it goes on), and
// where it was spawned.
function taskDescription(lane, run) {
  const end = lane.end;
  let outcome;
  if (!end) outcome = run && ACTIVE.has(run.status) ? run.status : 'not ended';
  else if (end.kind === 'task-completed') outcome = `completed ${describeEvent(end)}`.trim();
  else if (end.kind === 'task-failed') outcome = `failed: ${describeEvent(end)}`;
  else outcome = 'cancelled';
  const spawner = lane.spawn ? taskOf(lane.spawn) : 0;
  const from = lane.spawn ? `spawned at #${lane.spawn.seq}${spawner ? ` in task ${spawner}` : ''}` : '';
  return [outcome, from].filter(Boolean).join(' · ');
}

function taskTooltip(lane, run) {
  const lines = [`task ${lane.task}`];
  if (lane.spawn) {
    const step = lane.spawn.step != null ? ` (step ${lane.spawn.step})` : '';
    lines.push(`spawned by task ${taskOf(lane.spawn)} at #${lane.spawn.seq}${step}`);
  }
  const end = lane.end;
  if (end) lines.push(`${TASK_ENDS[end.kind]} at #${end.seq}${describeEvent(end) ? `: ${describeEvent(end)}` : ''}`);
  else lines.push(run && ACTIVE.has(run.status) ? 'still going' : 'no end in the log');
  lines.push(`${lane.seqs.length} event${lane.seqs.length === 1 ? '' : 's'}`);
  return lines.join('\n');
}

function taskIcon(lane, run) {
  if (lane.end) return statusIcon(TASK_ENDS[lane.end.kind]);
  return run && ACTIVE.has(run.status) ? statusIcon(run.status) : new vscode.ThemeIcon('circle-outline');
}

// A waiting run whose step's endpoint no live process serves waits until a connector for it runs.
function unservedNote(run) {
  return `waiting on ${run.unserved.join(', ')}: no live process serves ${run.unserved.length > 1 ? 'them' : 'it'}`;
}

function statusIcon(status) {
  const [icon, color] = STATUS_ICONS[status] || ['circle-outline'];
  return color ? new vscode.ThemeIcon(icon, new vscode.ThemeColor(color)) : new vscode.ThemeIcon(icon);
}

function toRange(range) {
  return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

// "demo.flow:12" for a location.
function place(location) {
  if (!location || !location.uri) return '';
  const name = decodeURIComponent(String(location.uri).split('/').pop() || '');
  return location.range ? `${name}:${location.range.start.line + 1}` : name;
}

// The labels of failed runs and failing events are red: their items carry a
// `flowmetal-runs:` resourceUri, which this provider decorates.
class FailureColours {
  constructor() {
    this.changed = new vscode.EventEmitter();
    this.onDidChangeFileDecorations = this.changed.event;
  }

  provideFileDecoration(uri) {
    if (uri.scheme !== DECORATION_SCHEME) return undefined;
    return { color: new vscode.ThemeColor('errorForeground'), tooltip: 'failed' };
  }
}

function failedUri(what) {
  return vscode.Uri.parse(`${DECORATION_SCHEME}:/${what}`);
}

// ------------------------------------------------------------------ the State view

function leaf(label, options = {}) {
  const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.None);
  Object.assign(item, options);
  return { item, children: [] };
}

// At most this many parts of one value are listed (the tooltip has them all).
const MAX_PARTS = 200;

// A value's item: `name = value` (the value on one line, cut by VS Code where
// the view ends), its type as the description, the value printed in full in
// the tooltip; a list, map, record or JSON body unfolds into its parts.
function valueElement(name, text, { type, records, icon, contextValue, expanded } = {}) {
  const node = typeof text === 'string' ? values.parseValue(text, records) : text;
  return nodeElement(name, node, { type, records, icon, contextValue, expanded, text });
}

function nodeElement(name, node, { type, records, icon, contextValue, expanded, text }) {
  const flat = text !== undefined ? String(text) : values.show(node);
  const parts = node.parts.slice(0, MAX_PARTS);
  const state = !parts.length ? vscode.TreeItemCollapsibleState.None
    : expanded ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed;
  const item = new vscode.TreeItem(`${name} = ${flat}`, state);
  // What it holds, when its type does not say: `JSON`, `3 items`, `2 keys`, a record's name.
  const kind = !parts.length ? '' : node.json ? 'JSON' : node.kind === 'record' && type ? '' : values.summary(node);
  item.description = [type, kind].filter(Boolean).join(' · ');
  const printed = values.prettyNode(node);
  item.tooltip = `${type ? `${name} : ${type}` : name}\n${printed}`;
  item.iconPath = new vscode.ThemeIcon(icon || (parts.length ? 'symbol-structure' : 'symbol-variable'));
  item.contextValue = contextValue || 'flowmetalValue';
  const children = parts.map((part) => nodeElement(part.key, part.node, { records }));
  if (node.parts.length > MAX_PARTS) children.push(leaf(`… ${node.parts.length - MAX_PARTS} more (in the tooltip)`));
  return { item, children };
}

function bindingElement(binding, records) {
  return valueElement(binding.name, binding.value, { type: binding.type, records, contextValue: 'flowmetalBinding' });
}

function openCommand(location) {
  return location && location.uri
    ? { command: 'flowmetal.openLocation', title: 'Go to Source', arguments: [location] }
    : undefined;
}

function frameElement(frame, innermost, records) {
  const bindings = (frame.bindings || []).map((binding) => bindingElement(binding, records));
  const item = new vscode.TreeItem(
    frame.function,
    bindings.length ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.None
  );
  item.description = place(frame.location) + (innermost ? ' (here)' : '');
  item.tooltip = `${frame.function}\n${place(frame.location)}`;
  item.iconPath = new vscode.ThemeIcon('symbol-function');
  item.contextValue = 'flowmetalFrame';
  item.command = openCommand(frame.location);
  return { item, children: bindings };
}

// The items of a State: the fault, value and step result first, then the call
// stack, innermost first, each frame with its bindings.
function stateElements(state) {
  const records = state.records && typeof state.records === 'object' ? state.records : {};
  const out = [];
  if (state.error != null) {
    out.push(leaf(`error: ${firstLine(state.error)}`, {
      tooltip: String(state.error), iconPath: new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground')),
      contextValue: 'flowmetalError', resourceUri: failedUri('state-error'),
    }));
  }
  if (state.value != null) {
    out.push(valueElement('value', state.value, { records, icon: 'symbol-constant', expanded: true }));
  }
  if (state.result != null) {
    out.push(valueElement('result', state.result, { records, icon: 'symbol-constant', expanded: true }));
  }
  const stack = state.stack || [];
  if (stack.length) {
    stack.forEach((frame, i) => out.push(frameElement(frame, i === 0, records)));
  } else {
    for (const binding of state.bindings || []) out.push(bindingElement(binding, records));
  }
  return out;
}

class StateTree {
  constructor() {
    this.changed = new vscode.EventEmitter();
    this.onDidChangeTreeData = this.changed.event;
    this.roots = [];
    this.state = undefined;
  }

  show(state) {
    this.state = state;
    this.roots = state ? stateElements(state) : [];
    this.changed.fire(undefined);
  }

  getTreeItem(element) {
    return element.item;
  }

  getChildren(element) {
    return element ? element.children : this.roots;
  }
}

// ------------------------------------------------------------------ the Runs view

class RunsPanel {
  constructor(context) {
    this.client = undefined;
    this.clientDisposables = [];
    this.runs = new Map(); // run id -> Run
    this.order = []; // run ids, oldest first (as the server lists them)
    this.events = new Map(); // run id -> Map(seq -> Event), for runs whose trace is read or being read
    this.loaded = new Set(); // run ids whose whole trace is in `events`
    this.loading = new Map(); // run id -> the promise reading its trace
    this.runElements = new Map();
    this.eventElements = new Map();
    this.taskElements = new Map(); // run id -> Map(task -> element)
    this.laneCache = new Map(); // run id -> {events, size, lanes}: a run's lanes, until it has more events
    this.rowCache = new Map(); // run id -> {events, size, rows, rowOf}: a run's rows, until it has more events
    this.filter = undefined; // show only the runs that pass it (rows.parseFilter)
    this.watched = new Set(); // ids of the active runs seen: one that fails is announced
    this.expanded = undefined; // the run last started from the editor, shown expanded
    this.started = new Set(); // ids of the runs started from here not yet seen active or failed
    this.listed = false;
    this.truncated = false; // the list holds only the LIST_LIMIT runs started last
    this.listError = undefined;
    this.stateTicket = 0;
    this.output = undefined;
    this.workspaceState = context.workspaceState; // the arguments last given to each entry (args.js)

    this.changed = new vscode.EventEmitter();
    this.onDidChangeTreeData = this.changed.event;
    this.stateTree = new StateTree();
    this.runsView = vscode.window.createTreeView(RUNS_VIEW, { treeDataProvider: this, showCollapseAll: true });
    this.stateView = vscode.window.createTreeView(STATE_VIEW, { treeDataProvider: this.stateTree });
    this.stateView.message = NO_STATE;
    this.shown = undefined; // the event the State view is for: {runId, seq, at, done, follow}
    this.highlighter = new Highlighter();
    this.colours = new FailureColours();
    // Pending rows say how long they have waited: the active runs whose rows are drawn are redrawn each second.
    this.ticker = setInterval(() => this.tick(), 1000);
    if (this.ticker && typeof this.ticker.unref === 'function') this.ticker.unref();

    context.subscriptions.push(
      this.runsView,
      this.stateView,
      // Selecting an event (a click, or the arrow keys) shows it too; selecting a
      // run shows its latest state, and follows it while it runs.
      this.runsView.onDidChangeSelection((event) => {
        const selected = event.selection || [];
        if (selected.length !== 1) return;
        if (selected[0].kind === 'event') this.showEvent(selected[0]);
        else if (selected[0].kind === 'run') this.showRun(selected[0].id);
      }),
      this.highlighter,
      vscode.window.registerFileDecorationProvider(this.colours),
      this.changed,
      this.stateTree.changed,
      vscode.commands.registerCommand('flowmetal.runs.refresh', (element) => this.refreshCommand(element)),
      vscode.commands.registerCommand('flowmetal.runs.cancel', (element) => this.cancel(element)),
      vscode.commands.registerCommand('flowmetal.runs.replay', (element) => this.replay(element)),
      vscode.commands.registerCommand('flowmetal.runs.showAll', () => this.setFilter(undefined)),
      vscode.commands.registerCommand('flowmetal.runs.filter', () => this.filterCommand()),
      vscode.commands.registerCommand('flowmetal.runs.nextEvent', () => this.step(1)),
      vscode.commands.registerCommand('flowmetal.runs.previousEvent', () => this.step(-1)),
      vscode.commands.registerCommand('flowmetal.runs.showEvent', (element) => this.showEvent(element)),
      vscode.commands.registerCommand('flowmetal.openLocation', (location) => this.openLocation(location, false)),
      { dispose: () => this.dispose() }
    );
  }

  // -- the language client --

  // Listens to `client`'s run notifications (call before it starts, so that
  // none is missed; `refresh` once it has).
  attach(client) {
    this.detach();
    this.client = client;
    this.clientDisposables = [
      client.onNotification('flowmetal/runUpdated', (run) => this.runUpdated(run)),
      client.onNotification('flowmetal/traceEvent', (params) => this.traceEvent(params)),
    ];
  }

  detach(client) {
    if (client !== undefined && client !== this.client) return;
    for (const disposable of this.clientDisposables) {
      if (disposable && typeof disposable.dispose === 'function') disposable.dispose();
    }
    this.clientDisposables = [];
    this.client = undefined;
  }

  request(method, params) {
    if (!this.client) return Promise.reject(new Error('the Flowmetal language server is not running'));
    return this.client.sendRequest(method, params);
  }

  execute(command, arg) {
    return this.request('workspace/executeCommand', { command, arguments: [arg] });
  }

  // The language client's middleware for the server's commands: `flowmetal.run`
  // asks for missing arguments and shows the new run; `flowmetal.showRuns`
  // opens the Runs view on an entry instead of going to the server.
  executeCommand(command, args, next) {
    if (command === 'flowmetal.run') return this.run(args, next);
    if (command === 'flowmetal.showRuns') return this.showRuns(args && args[0]);
    return next(command, args);
  }

  async run(args, next) {
    const list = Array.isArray(args) ? args : [];
    const arg = list[0] && typeof list[0] === 'object' ? list[0] : undefined;
    let call = list;
    if (arg && !Array.isArray(arg.args)) {
      const values = await this.askArguments(arg, 'Run');
      if (values === undefined) return undefined; // escaped: nothing runs
      call = [{ ...arg, args: values }, ...list.slice(1)];
    }
    let answer;
    try {
      answer = await next('flowmetal.run', call);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
      return undefined;
    }
    if (answer && answer.runId) await this.revealRun(answer.runId);
    return answer;
  }

  // Asks for the arguments of a Run (or Debug) lens's entry, each checked by the
  // server as it is typed (args.js).
  askArguments(arg, verb) {
    return askArguments(arg.entry, Array.isArray(arg.params) ? arg.params : [], {
      verb, uri: arg.uri, state: this.workspaceState,
      check: (params) => this.request('flowmetal/checkArgument', params),
    });
  }

  async showRuns(arg) {
    const entry = arg && typeof arg.entry === 'string' && arg.entry ? arg.entry : undefined;
    if (!this.listed) await this.refresh();
    await this.setFilter(entry ? { entry } : undefined);
    await this.revealPanel();
    return this.visibleIds().reverse().map((id) => this.runs.get(id));
  }

  // -- the model --

  async refresh() {
    const client = this.client;
    if (!client) return;
    let runs;
    try {
      runs = await client.sendRequest('flowmetal/runs', { last: LIST_LIMIT });
    } catch (err) {
      if (client !== this.client) return;
      this.listError = `Could not list the runs: ${errorMessage(err)}`;
      this.updateMessage();
      return;
    }
    if (client !== this.client) return;
    const fresh = new Map();
    for (const run of Array.isArray(runs) ? runs : []) {
      if (!run || !run.id) continue;
      const known = this.runs.get(run.id);
      // A notification may have brought a newer state of it while the list was on its way.
      fresh.set(run.id, known && (known.updated || '') > (run.updated || '') ? known : run);
    }
    this.runs = fresh;
    this.order = [...fresh.keys()];
    this.watched = new Set([...fresh.values()].filter((run) => ACTIVE.has(run.status)).map((run) => run.id));
    this.events.clear();
    this.loaded.clear();
    this.loading.clear();
    this.listed = true;
    this.truncated = fresh.size >= LIST_LIMIT;
    this.listError = undefined;
    this.updateMessage();
    this.changed.fire(undefined);
    if (this.truncated && this.filter) await this.fetchOlder(this.filter);
  }

  // The runs passing a status: or entry: filter that the first LIST_LIMIT left out: asked for
  // (the server narrows them in the store) and put in their place among the others.
  async fetchOlder(filter) {
    const client = this.client;
    if (!client || !this.truncated || !(filter.statuses || filter.entry)) return;
    const params = { last: LIST_LIMIT };
    if (filter.statuses) params.status = filter.statuses;
    if (filter.entry) params.entry = filter.entry;
    let runs;
    try {
      runs = await client.sendRequest('flowmetal/runs', params);
    } catch (err) {
      if (client !== this.client) return;
      this.listError = `Could not list the older runs of ${rows.filterText(filter)}: ${errorMessage(err)}`;
      this.updateMessage();
      return;
    }
    if (client !== this.client || !Array.isArray(runs)) return;
    let added = false;
    for (const run of runs) added = this.mergeRun(run) || added;
    if (!added) return;
    const place = new Map(this.order.map((id, i) => [id, i]));
    const started = (id) => (this.runs.get(id) || {}).started || '';
    this.order.sort((a, b) => (started(a) < started(b) ? -1 : started(a) > started(b) ? 1 : place.get(a) - place.get(b)));
    this.updateMessage();
    this.changed.fire(undefined);
  }

  // Adds or updates a run; answers whether it is new. A run read with its
  // trace may be older than what a notification brought meanwhile: the newer wins.
  mergeRun(run) {
    if (!run || !run.id) return false;
    const known = this.runs.get(run.id);
    if (!known || (known.updated || '') <= (run.updated || '')) this.runs.set(run.id, run);
    if (!known) this.order.push(run.id);
    return !known;
  }

  runUpdated(run) {
    if (!run || !run.id) return;
    const known = this.runs.get(run.id);
    if (known && JSON.stringify(known) === JSON.stringify(run)) return; // nothing to redraw
    const moved = !known || known.status !== run.status;
    const added = this.mergeRun(run);
    this.updateMessage();
    if (ACTIVE.has(run.status)) this.watched.add(run.id);
    else if (this.watched.delete(run.id) && run.status === 'failed') this.announced = this.announceFailure(run);
    // A run started here that failed before it was first seen running is announced too.
    else if (this.started.delete(run.id) && run.status === 'failed') this.announced = this.announceFailure(run);
    // A new status redraws the whole list: VS Code may drop an element's own refresh
    // that comes while the list is being redrawn, and leave a run shown as pending.
    this.changed.fire(added || moved ? undefined : this.runElement(run.id));
  }

  traceEvent(params) {
    const runId = params && params.runId;
    const event = params && params.event;
    if (!runId || !event || typeof event.seq !== 'number') return;
    const events = this.events.get(runId);
    if (!events) return; // not read yet: `flowmetal/trace` brings it all when the run is opened
    if (events.has(event.seq)) return; // read with the trace already
    events.set(event.seq, event);
    if (this.loaded.has(runId) && this.runs.has(runId)) this.changed.fire(this.runElement(runId));
    if (this.shown && this.shown.follow && this.shown.runId === runId) this.followRun(runId);
  }

  loadTrace(runId) {
    if (this.loading.has(runId)) return this.loading.get(runId);
    const events = new Map();
    this.events.set(runId, events); // events notified meanwhile go here too
    this.loaded.delete(runId);
    const reading = (async () => {
      try {
        const answer = await this.request('flowmetal/trace', { runId });
        if (this.events.get(runId) !== events) return; // refreshed meanwhile
        for (const event of (answer && answer.events) || []) events.set(event.seq, event);
        if (answer && answer.run) this.mergeRun(answer.run);
        this.loaded.add(runId);
      } catch (err) {
        if (this.events.get(runId) === events) this.events.delete(runId);
        throw err;
      } finally {
        if (this.loading.get(runId) === reading) this.loading.delete(runId);
      }
    })();
    this.loading.set(runId, reading);
    return reading;
  }

  visibleIds() {
    const ids = this.order.filter((id) => rows.matches(this.filter, this.runs.get(id)));
    return ids.reverse(); // newest first
  }

  // The run a visible run is shown under: its `parent`, when that run is shown too.
  // A cycle of parents (a store edited by hand) nests none of them.
  parentShown(id, visible) {
    const parent = (this.runs.get(id) || {}).parent;
    if (typeof parent !== 'string' || !visible.has(parent)) return undefined;
    const seen = new Set([id]);
    for (let at = parent; typeof at === 'string' && visible.has(at); at = (this.runs.get(at) || {}).parent) {
      if (seen.has(at)) return undefined;
      seen.add(at);
    }
    return parent;
  }

  // The runs shown at the top (newest first): those not shown under their parent.
  topIds() {
    const ids = this.visibleIds();
    const visible = new Set(ids);
    return ids.filter((id) => this.parentShown(id, visible) === undefined);
  }

  // The child runs shown under the run `id`, newest first.
  childIds(id) {
    const ids = this.visibleIds();
    const visible = new Set(ids);
    return ids.filter((child) => this.parentShown(child, visible) === id);
  }

  // The lanes of a run whose trace is read (lanesOf), or null: a run without tasks.
  lanes(runId) {
    const events = this.events.get(runId);
    if (!events) return null;
    const cached = this.laneCache.get(runId);
    if (cached && cached.events === events && cached.size === events.size) return cached.lanes;
    const lanes = lanesOf([...events.values()].sort((a, b) => a.seq - b.seq));
    this.laneCache.set(runId, { events, size: events.size, lanes });
    return lanes;
  }

  // The rows of a run whose trace is read (rows.rowsOf), with `rowOf`: the row of each seq.
  rows(runId) {
    const events = this.events.get(runId);
    if (!events) return null;
    const cached = this.rowCache.get(runId);
    if (cached && cached.events === events && cached.size === events.size) return cached;
    const list = rows.rowsOf([...events.values()].sort((a, b) => a.seq - b.seq));
    const rowOf = new Map();
    for (const row of list) for (const seq of row.within) rowOf.set(seq, row);
    const made = { events, size: events.size, rows: list, rowOf };
    this.rowCache.set(runId, made);
    return made;
  }

  // The seqs of the rows of one lane (or of the whole run), in order: a row
  // stands at its first event's place.
  rowSeqs(runId, seqs) {
    const model = this.rows(runId);
    if (!model) return [];
    return seqs.filter((seq) => (model.rowOf.get(seq) || {}).seq === seq);
  }

  // Shows only the runs that pass `filter` ({statuses, entry, text}, or none: all).
  // Answers once the older runs that pass it, if the list was cut, are in.
  setFilter(filter) {
    this.filter = rows.isEmpty(filter) ? undefined : filter;
    this.runsView.description = rows.filterText(this.filter);
    vscode.commands.executeCommand('setContext', FILTERED_CONTEXT, Boolean(this.filter));
    this.updateMessage();
    this.changed.fire(undefined);
    return this.filter ? this.fetchOlder(this.filter) : Promise.resolve();
  }

  // The filter, as the user types it: `status:failed entry:demo/main words`.
  async filterCommand() {
    const typed = await vscode.window.showInputBox({
      title: 'Filter the Runs',
      prompt: FILTER_HELP,
      value: rows.filterText(this.filter),
      placeHolder: 'status:failed entry:demo/main ann',
      validateInput: (text) => rows.parseFilter(text).error,
    });
    if (typed === undefined) return undefined;
    const filter = rows.parseFilter(typed);
    if (filter.error) return undefined;
    this.setFilter(filter);
    return this.visibleIds().length;
  }

  updateMessage() {
    let message;
    if (this.listError) {
      message = this.listError;
    } else if (this.listed && this.visibleIds().length === 0) {
      message = this.filter
        ? (this.filter.entry && !this.filter.statuses && !this.filter.text
          ? `No runs of ${this.filter.entry} yet.` : `No runs match ${rows.filterText(this.filter)}.`)
        : 'No runs yet. Run a function with the ▶ Run lens above its defn.';
    } else if (this.filter) {
      const shownCount = this.visibleIds().length;
      // Counted among the runs listed: when the list was cut, not among the store's.
      const among = this.truncated ? `the ${this.order.length.toLocaleString('en-US')} runs listed`
        : `${this.order.length} runs`;
      message = `${shownCount} of ${among}: ${rows.filterText(this.filter)}`;
    } else if (this.truncated) {
      message = `The ${LIST_LIMIT.toLocaleString('en-US')} runs started last, and those since. ` +
        'A status: or entry: filter finds older ones.';
    }
    this.runsView.message = message;
  }

  runElement(id) {
    let element = this.runElements.get(id);
    if (!element) {
      element = { kind: 'run', id };
      this.runElements.set(id, element);
    }
    return element;
  }

  eventElement(runId, seq) {
    let byRun = this.eventElements.get(runId);
    if (!byRun) {
      byRun = new Map();
      this.eventElements.set(runId, byRun);
    }
    let element = byRun.get(seq);
    if (!element) {
      element = { kind: 'event', runId, seq };
      byRun.set(seq, element);
    }
    return element;
  }

  taskElement(runId, task) {
    let byRun = this.taskElements.get(runId);
    if (!byRun) {
      byRun = new Map();
      this.taskElements.set(runId, byRun);
    }
    let element = byRun.get(task);
    if (!element) {
      element = { kind: 'task', runId, task };
      byRun.set(task, element);
    }
    return element;
  }

  event(element) {
    const events = element && this.events.get(element.runId);
    return events ? events.get(element.seq) : undefined;
  }

  // -- TreeDataProvider --

  getTreeItem(element) {
    if (element.kind === 'run') {
      const run = this.runs.get(element.id) || { id: element.id, entry: shortId(element.id), status: '' };
      const item = new vscode.TreeItem(run.entry || shortId(run.id), vscode.TreeItemCollapsibleState.Collapsed);
      item.id = `run:${run.id}`;
      // A run the server does not drive (an untrusted workspace's store) says so.
      item.description = runDescription(run, Date.now());
      item.tooltip = runTooltip(run);
      item.iconPath = run.blocked ? new vscode.ThemeIcon('lock') : statusIcon(run.status);
      if (run.status === 'failed') item.resourceUri = failedUri(`run/${run.id}`);
      item.contextValue = ACTIVE.has(run.status) ? 'flowmetalRun.active' : 'flowmetalRun.ended';
      return item;
    }
    if (element.kind === 'event') {
      const event = this.event(element) || { seq: element.seq, kind: '' };
      const model = this.rows(element.runId);
      const row = (model && model.rowOf.get(element.seq)) || { seq: event.seq, head: event, end: null, within: [] };
      const start = (this.runs.get(element.runId) || {}).started;
      const item = new vscode.TreeItem(rowLabel(row), vscode.TreeItemCollapsibleState.None);
      item.id = `event:${element.runId}:${element.seq}`;
      item.description = rowDescription(row, start, Date.now());
      item.tooltip = rowTooltip(row, start);
      const last = row.end || event;
      if (FAILS.has(event.kind)) {
        item.iconPath = new vscode.ThemeIcon('error', new vscode.ThemeColor('errorForeground'));
        item.resourceUri = failedUri(`event/${element.runId}/${event.seq}`);
      } else if (row.end === undefined) {
        item.iconPath = new vscode.ThemeIcon(event.kind === 'timer-set' ? 'watch' : 'loading~spin');
      } else {
        item.iconPath = new vscode.ThemeIcon(EVENT_ICONS[last.kind] || 'circle-small');
      }
      item.contextValue = 'flowmetalEvent';
      item.command = { command: 'flowmetal.runs.showEvent', title: 'Show the State Here', arguments: [element] };
      return item;
    }
    if (element.kind === 'task') {
      const run = this.runs.get(element.runId);
      const lane = (this.lanes(element.runId) || new Map()).get(element.task)
        || { task: element.task, seqs: [], spawn: undefined, end: undefined };
      const item = new vscode.TreeItem(`task ${element.task}`, lane.seqs.length
        ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
      item.id = `task:${element.runId}:${element.task}`;
      item.description = taskDescription(lane, run);
      item.tooltip = taskTooltip(lane, run);
      item.iconPath = taskIcon(lane, run);
      if (lane.end && lane.end.kind === 'task-failed') item.resourceUri = failedUri(`task/${element.runId}/${element.task}`);
      item.contextValue = 'flowmetalTask';
      return item;
    }
    const item = new vscode.TreeItem(element.text, vscode.TreeItemCollapsibleState.None);
    item.iconPath = new vscode.ThemeIcon('warning');
    return item;
  }

  // A run's children: its child runs, then its events. A run with tasks shows its
  // own (task 0) events, then a "task N" item per task, holding that task's events.
  async getChildren(element) {
    if (!element) return this.topIds().map((id) => this.runElement(id));
    if (element.kind === 'task') {
      const lane = (this.lanes(element.runId) || new Map()).get(element.task);
      return lane ? this.rowSeqs(element.runId, lane.seqs).map((seq) => this.eventElement(element.runId, seq)) : [];
    }
    if (element.kind !== 'run') return [];
    const children = this.childIds(element.id).map((id) => this.runElement(id));
    if (!this.loaded.has(element.id)) {
      try {
        await this.loadTrace(element.id);
      } catch (err) {
        return [...children,
          { kind: 'message', runId: element.id, text: `Could not read the trace: ${errorMessage(err)}` }];
      }
    }
    const events = this.events.get(element.id);
    if (!events) return children;
    const lanes = this.lanes(element.id);
    if (!lanes) {
      const seqs = this.rowSeqs(element.id, [...events.keys()].sort((a, b) => a - b));
      return [...children, ...seqs.map((seq) => this.eventElement(element.id, seq))];
    }
    const tasks = [...lanes.keys()].filter((task) => task !== 0).sort((a, b) => a - b);
    return [...children, ...this.rowSeqs(element.id, lanes.get(0).seqs).map((seq) => this.eventElement(element.id, seq)),
      ...tasks.map((task) => this.taskElement(element.id, task))];
  }

  getParent(element) {
    if (element.kind === 'run') {
      const visible = new Set(this.visibleIds());
      const parent = this.parentShown(element.id, visible);
      return parent === undefined ? undefined : this.runElement(parent);
    }
    if (element.kind === 'event') {
      const task = taskOf(this.event(element));
      if (task !== 0 && this.lanes(element.runId)) return this.taskElement(element.runId, task);
    }
    return this.runElement(element.runId);
  }

  // -- showing --

  async revealPanel() {
    try {
      await vscode.commands.executeCommand(CONTAINER_COMMAND);
    } catch (_) {
      // No side bar (or no such command): the views still update.
    }
  }

  // Shows a run just started: reads it, opens the Runs view and selects it,
  // expanded; the run started before it from here is folded again (only the
  // newest stays open), and the State view turns to the new run.
  async revealRun(runId) {
    this.started.add(runId);
    if (!this.loaded.has(runId)) {
      try {
        await this.loadTrace(runId);
      } catch (_) {
        // Its first `flowmetal/runUpdated` brings it.
      }
    }
    const run = this.runs.get(runId);
    if (run && ACTIVE.has(run.status) && this.started.delete(runId)) this.watched.add(runId);
    if (run && run.status === 'failed' && this.started.delete(runId)) this.announced = this.announceFailure(run);
    if (this.filter && run && !rows.matches(this.filter, run)) this.setFilter(undefined);
    this.clearState();
    this.updateMessage();
    this.changed.fire(undefined);
    await this.revealPanel();
    if (!run) return;
    if (this.expanded && this.expanded !== runId) {
      try {
        await vscode.commands.executeCommand(COLLAPSE_COMMAND);
      } catch (_) {
        // No such command (the view is not shown): nothing is expanded.
      }
    }
    this.expanded = runId;
    try {
      await this.runsView.reveal(this.runElement(runId), { select: true, focus: false, expand: true });
    } catch (_) {
      // The view is hidden: nothing to select.
    }
  }

  // Opens `location` in an editor: answers the editor, or undefined.
  async openLocation(location, preserveFocus = true) {
    if (!location || !location.uri) return undefined;
    const options = { preserveFocus, preview: true };
    if (location.range) options.selection = toRange(location.range);
    try {
      return await vscode.window.showTextDocument(vscode.Uri.parse(location.uri), options);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: could not open ${location.uri} (${errorMessage(err)})`);
      return undefined;
    }
  }

  // An event clicked or selected: its source in an editor, its line marked,
  // and the run's state there in the State view. A click both selects and
  // runs the item's command: the second, right after the first, is the same one.
  showEvent(element) {
    const event = this.event(element);
    if (!event) return Promise.resolve(undefined);
    const last = this.shown;
    if (last && !last.follow && last.runId === element.runId && last.seq === event.seq && Date.now() - last.at < 1000) {
      return last.done;
    }
    const shown = { runId: element.runId, seq: event.seq, at: Date.now(), follow: false };
    shown.done = this.readState(element.runId, event, { open: true });
    this.shown = shown;
    return shown.done;
  }

  // A run selected: the State view shows its latest state, and follows it
  // while events come in.
  async showRun(runId) {
    const last = this.shown;
    if (last && last.follow && last.runId === runId && Date.now() - last.at < 1000) return last.done;
    const shown = { runId, seq: undefined, at: Date.now(), follow: true };
    this.shown = shown;
    shown.done = (async () => {
      if (!this.loaded.has(runId)) {
        try {
          await this.loadTrace(runId);
        } catch (err) {
          if (this.shown === shown) this.stateView.message = `Could not read the trace: ${errorMessage(err)}`;
          return undefined;
        }
      }
      return this.showLatest(shown);
    })();
    return shown.done;
  }

  showLatest(shown) {
    if (this.shown !== shown) return undefined;
    const model = this.rows(shown.runId);
    const row = model && model.rows[model.rows.length - 1];
    if (!row) return undefined;
    shown.seq = row.seq;
    return this.readState(shown.runId, row.head, { open: false, latest: true });
  }

  // New events of the run the State view follows: its latest state, once the burst is over.
  followRun(runId) {
    const shown = this.shown;
    if (!shown || shown.runId !== runId || shown.timer) return;
    shown.timer = setTimeout(() => {
      shown.timer = undefined;
      shown.done = this.showLatest(shown);
    }, 150);
  }

  // The state at `event`'s row (at its last event, which holds a step's result).
  async readState(runId, event, { open, latest } = {}) {
    const ticket = ++this.stateTicket;
    const run = this.runs.get(runId) || { entry: shortId(runId) };
    const model = this.rows(runId);
    const row = (model && model.rowOf.get(event.seq)) || { seq: event.seq, head: event, end: null, within: [event.seq] };
    const at = (row.end || row.head).seq;
    const task = taskOf(event);
    const title = `${run.entry}${task ? ` · task ${task}` : ''} ${rowLabel(row)}${latest ? ' (latest)' : ''}`;
    const failed = FAILS.has(event.kind);
    const opening = open ? this.openLocation(event.location) : Promise.resolve(this.visibleEditor(event.location));
    if (!latest) this.stateTree.show(undefined);
    this.stateView.description = title;
    if (!latest) this.stateView.message = `Reading the state at #${at}…`;
    const marking = opening.then((editor) => {
      if (ticket !== this.stateTicket) return;
      if (editor && event.location && event.location.range) this.highlighter.show(editor, toRange(event.location.range), failed);
      else this.highlighter.clear();
    });
    let state;
    try {
      state = await this.request('flowmetal/stateAt', { runId, seq: at });
    } catch (err) {
      if (ticket === this.stateTicket) {
        this.stateTree.show(undefined);
        this.stateView.message = `No state at #${at}: ${errorMessage(err)}`;
      }
      await marking;
      return undefined;
    }
    if (ticket === this.stateTicket) {
      this.stateTree.show(state);
      this.stateView.description = state && state.via ? `${title} (${state.via})` : title;
      this.stateView.message = this.stateTree.roots.length ? undefined : 'Nothing is bound here.';
    }
    await marking;
    return state;
  }

  // The editor showing `location`'s file now, if one does.
  visibleEditor(location) {
    if (!location || !location.uri) return undefined;
    return (vscode.window.visibleTextEditors || []).find((editor) =>
      editor && editor.document && String(editor.document.uri) === String(location.uri));
  }

  clearState() {
    this.stateTicket++;
    if (this.shown && this.shown.timer) clearTimeout(this.shown.timer);
    this.shown = undefined;
    this.highlighter.clear();
    this.stateTree.show(undefined);
    this.stateView.description = '';
    this.stateView.message = NO_STATE;
  }

  // -- stepping through events --

  // The next (`direction` 1) or previous (-1) row of the selected run, in the
  // order of its log (across its tasks): selected, revealed and shown. From a
  // run or a task, the first row (or the last, going back).
  async step(direction) {
    const selected = (this.runsView.selection || [])[0];
    if (!selected || !['run', 'event', 'task'].includes(selected.kind)) return undefined;
    const runId = selected.kind === 'run' ? selected.id : selected.runId;
    if (!this.loaded.has(runId)) {
      try {
        await this.loadTrace(runId);
      } catch (err) {
        vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
        return undefined;
      }
    }
    const model = this.rows(runId);
    if (!model || !model.rows.length) return undefined;
    let list = model.rows;
    if (selected.kind === 'task') list = list.filter((row) => taskOf(row.head) === selected.task);
    let target;
    if (selected.kind === 'event') {
      const row = model.rowOf.get(selected.seq);
      const at = list.indexOf(row);
      target = at < 0 ? undefined : list[at + direction];
    } else {
      target = direction > 0 ? list[0] : list[list.length - 1];
    }
    if (!target) return undefined;
    const element = this.eventElement(runId, target.seq);
    try {
      await this.runsView.reveal(element, { select: true, focus: true });
    } catch (_) {
      // The view is hidden: shown all the same.
    }
    return this.showEvent(element);
  }

  // -- live --

  // Each second, the active runs are redrawn: how long each has run, and how
  // long its pending step has waited, go on.
  tick() {
    for (const id of this.visibleIds()) {
      const run = this.runs.get(id);
      if (run && ACTIVE.has(run.status) && !run.blocked) this.changed.fire(this.runElement(id));
    }
  }

  // A run seen running has failed: say so, offering its failing event.
  async announceFailure(run) {
    const show = 'Show Failing Event';
    const chosen = await vscode.window.showErrorMessage(
      `Flowmetal: ${run.entry} failed: ${firstLine(run.error) || 'no message'}`, show);
    if (chosen === show) return this.showFailure(run.id);
    return undefined;
  }

  // The event a failed run failed at (its `run-failed`, else its last failed
  // task's): selected in the Runs view, its line marked red, its state shown.
  async showFailure(runId) {
    try {
      await this.loadTrace(runId);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
      return undefined;
    }
    const events = [...(this.events.get(runId) || new Map()).values()].sort((a, b) => a.seq - b.seq);
    const failure = events.find((event) => event.kind === 'run-failed')
      || events.filter((event) => event.kind === 'task-failed').pop();
    if (!failure) return undefined;
    const run = this.runs.get(runId);
    if (this.filter && run && !rows.matches(this.filter, run)) this.setFilter(undefined);
    this.changed.fire(undefined);
    await this.revealPanel();
    const element = this.eventElement(runId, failure.seq);
    try {
      await this.runsView.reveal(element, { select: true, focus: true });
    } catch (_) {
      // The view is hidden: shown all the same.
    }
    return this.showEvent(element);
  }

  // -- run actions --

  // The run an action is for: the item it was invoked on, else the selected one.
  runIdOf(element) {
    const target = element || (this.runsView.selection || [])[0];
    if (!target) return undefined;
    return target.kind === 'run' ? target.id : target.runId;
  }

  async refreshCommand(element) {
    const runId = element ? this.runIdOf(element) : undefined;
    if (!runId) {
      this.clearState();
      await this.refresh();
      return;
    }
    try {
      await this.loadTrace(runId);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
    }
    this.changed.fire(this.runElement(runId));
  }

  async cancel(element) {
    const runId = this.runIdOf(element);
    if (!runId) return undefined;
    let answer;
    try {
      answer = await this.execute('flowmetal.cancel', { runId });
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
      return undefined;
    }
    const status = answer && answer.status;
    const what = status === 'cancelling' ? 'stops at its next checkpoint'
      : status === 'cancelled' ? 'is cancelled'
        : `had ended already (${status})`;
    vscode.window.showInformationMessage(`Flowmetal: run ${shortId(runId)} ${what}.`);
    return answer;
  }

  async replay(element) {
    const runId = this.runIdOf(element);
    if (!runId) return undefined;
    const run = this.runs.get(runId);
    const name = `run ${shortId(runId)}${run ? ` (${run.entry})` : ''}`;
    let answer;
    try {
      answer = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: `Replaying ${name}` },
        () => this.execute('flowmetal.replay', { runId })
      );
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: ${errorMessage(err)}`);
      return undefined;
    }
    if (!answer) return undefined;
    const steps = `${answer.steps} step${answer.steps === 1 ? '' : 's'} replayed`;
    const outcome = answer.fault != null ? `, fault: ${firstLine(answer.fault)}`
      : answer.value != null ? `, value ${answer.value}` : '';
    this.replayReport(name, answer);
    const show = 'Show Steps';
    const chosen = answer.divergence
      ? await vscode.window.showWarningMessage(
        `Flowmetal: ${name} does not reproduce: ${answer.divergence}`, show)
      : await vscode.window.showInformationMessage(
        `Flowmetal: ${name} reproduces (${steps}${outcome}).`, show);
    if (chosen === show && this.output) this.output.show(true);
    return answer;
  }

  replayReport(name, answer) {
    if (!this.output) this.output = vscode.window.createOutputChannel('Flowmetal Runs');
    this.output.appendLine(`Replay of ${name}:`);
    for (const line of answer.lines || []) this.output.appendLine(`  ${line}`);
    if (answer.value != null) this.output.appendLine(`  value ${answer.value}`);
    if (answer.fault != null) this.output.appendLine(`  fault ${answer.fault}`);
    this.output.appendLine(answer.divergence ? `  diverges: ${answer.divergence}` : '  reproduces the log');
  }

  dispose() {
    this.detach();
    clearInterval(this.ticker);
    if (this.output) this.output.dispose();
  }
}

module.exports = { RunsPanel, askArguments, describeEvent, stateElements };
