// Running and tracing Flowmetal programs from VS Code: the Run lens (args.js
// asks for its arguments), the "Runs" and "State" views of the Flowmetal side
// bar, and the run actions (cancel, replay, refresh).
//
// Everything shown comes from the language server, through the protocol of
// docs/lsp-protocol.md: the `flowmetal/runs`, `flowmetal/trace` and
// `flowmetal/stateAt` requests, the `flowmetal/runUpdated` and
// `flowmetal/traceEvent` notifications, and the `flowmetal.*` commands. Nothing
// here reads Flowmetal: arguments are passed on as the user typed them, and
// values are shown as the server wrote them.
//
// Tasks and child runs are drawn from the same messages: each event's `task`
// (0 for the run's own code) puts the events of a run with tasks into lanes, a
// "task N" item per spawned task after the run's own events; a run summary's
// `parent` nests a child run under the run that started it. A run without
// tasks, or a summary without `parent`, shows as it always did.
'use strict';

const vscode = require('vscode');
const { askArguments } = require('./args');

const RUNS_VIEW = 'flowmetal.runs';
const STATE_VIEW = 'flowmetal.state';
const CONTAINER_COMMAND = 'workbench.view.extension.flowmetal';
const FILTERED_CONTEXT = 'flowmetal.runsFiltered';

const ACTIVE = new Set(['pending', 'running', 'waiting']);

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

const NO_STATE = 'Select an event of a run to see the run\'s state there.';

// ------------------------------------------------------------------ formatting

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

// A time (ISO 8601, or milliseconds since the epoch) as the local time of
// day, with the date when it is not today.
function clock(when, now = new Date()) {
  if (when == null || when === '') return '';
  const t = new Date(when);
  if (Number.isNaN(t.getTime())) return String(when);
  const pad = (n) => String(n).padStart(2, '0');
  const time = `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
  if (t.toDateString() === now.toDateString()) return time;
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${time}`;
}

function formatArgs(args) {
  if (Array.isArray(args)) return args.map(shown).join(' ');
  if (args && typeof args === 'object') {
    return Object.entries(args).map(([name, value]) => `${name}=${shown(value)}`).join(' ');
  }
  return args == null ? '' : shown(args);
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

function eventTooltip(event) {
  const lines = [`#${event.seq} ${event.kind}` + (event.step != null ? ` (step ${event.step})` : '')];
  if (event.time) lines.push(event.time);
  for (const [key, value] of Object.entries(event.data || {})) {
    lines.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}`);
  }
  return lines.join('\n');
}

function runTooltip(run) {
  const lines = [`${run.entry} ${formatArgs(run.args)}`.trim(), `run ${run.id}`, `status: ${run.status}`];
  if (run.started) lines.push(`started: ${run.started}`);
  if (run.ended) lines.push(`ended: ${run.ended}`);
  if (run.result != null) lines.push(`result: ${run.result}`);
  if (run.error != null) lines.push(`error: ${run.error}`);
  if (run.origin) lines.push(`from: ${run.origin}`);
  if (run.parent) lines.push(`child run of ${run.parent}`);
  if (run.blocked) lines.push(`not run here: ${run.blocked}`);
  if (run.unserved && run.unserved.length) lines.push(unservedNote(run));
  return lines.join('\n');
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

// ------------------------------------------------------------------ the State view

function leaf(label, options = {}) {
  const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.None);
  Object.assign(item, options);
  return { item, children: [] };
}

function bindingElement(binding) {
  const typed = binding.type ? `${binding.name} : ${binding.type}` : binding.name;
  const label = `${typed} = ${binding.value}`;
  return leaf(label, { tooltip: label, iconPath: new vscode.ThemeIcon('symbol-variable'), contextValue: 'flowmetalBinding' });
}

function openCommand(location) {
  return location && location.uri
    ? { command: 'flowmetal.openLocation', title: 'Go to Source', arguments: [location] }
    : undefined;
}

function frameElement(frame, innermost) {
  const bindings = (frame.bindings || []).map(bindingElement);
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
  const out = [];
  if (state.error != null) {
    out.push(leaf(`error: ${firstLine(state.error)}`, {
      tooltip: String(state.error), iconPath: new vscode.ThemeIcon('error'), contextValue: 'flowmetalError',
    }));
  }
  if (state.value != null) {
    out.push(leaf(`value = ${state.value}`, {
      tooltip: `the run's value: ${state.value}`, iconPath: new vscode.ThemeIcon('symbol-constant'),
    }));
  }
  if (state.result != null) {
    out.push(leaf(`result = ${state.result}`, {
      tooltip: `the step's result: ${state.result}`, iconPath: new vscode.ThemeIcon('symbol-constant'),
    }));
  }
  const stack = state.stack || [];
  if (stack.length) {
    stack.forEach((frame, i) => out.push(frameElement(frame, i === 0)));
  } else {
    for (const binding of state.bindings || []) out.push(bindingElement(binding));
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
    this.filter = undefined; // show only the runs of this entry
    this.listed = false;
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
    this.shown = undefined; // the event the State view is for: {runId, seq, at, done}

    context.subscriptions.push(
      this.runsView,
      this.stateView,
      // Selecting an event (a click, or the arrow keys) shows it too.
      this.runsView.onDidChangeSelection((event) => {
        const selected = event.selection || [];
        if (selected.length === 1 && selected[0].kind === 'event') this.showEvent(selected[0]);
      }),
      this.changed,
      this.stateTree.changed,
      vscode.commands.registerCommand('flowmetal.runs.refresh', (element) => this.refreshCommand(element)),
      vscode.commands.registerCommand('flowmetal.runs.cancel', (element) => this.cancel(element)),
      vscode.commands.registerCommand('flowmetal.runs.replay', (element) => this.replay(element)),
      vscode.commands.registerCommand('flowmetal.runs.showAll', () => this.setFilter(undefined)),
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
    this.setFilter(entry);
    if (!this.listed) await this.refresh();
    await this.revealPanel();
    return this.visibleIds().reverse().map((id) => this.runs.get(id));
  }

  // -- the model --

  async refresh() {
    const client = this.client;
    if (!client) return;
    let runs;
    try {
      runs = await client.sendRequest('flowmetal/runs', {});
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
    this.events.clear();
    this.loaded.clear();
    this.loading.clear();
    this.listed = true;
    this.listError = undefined;
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
    const ids = this.order.filter((id) => !this.filter || (this.runs.get(id) || {}).entry === this.filter);
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

  setFilter(entry) {
    this.filter = entry || undefined;
    this.runsView.description = this.filter || '';
    vscode.commands.executeCommand('setContext', FILTERED_CONTEXT, Boolean(this.filter));
    this.updateMessage();
    this.changed.fire(undefined);
  }

  updateMessage() {
    let message;
    if (this.listError) {
      message = this.listError;
    } else if (this.listed && this.visibleIds().length === 0) {
      message = this.filter
        ? `No runs of ${this.filter} yet.`
        : 'No runs yet. Run a function with the ▶ Run lens above its defn.';
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
      const unserved = run.unserved && run.unserved.length ? `no live process serves ${run.unserved.join(', ')}` : '';
      item.description = [run.status, run.blocked ? 'not trusted' : '', unserved, clock(run.started)]
        .filter(Boolean).join(' · ');
      item.tooltip = runTooltip(run);
      item.iconPath = run.blocked ? new vscode.ThemeIcon('lock') : statusIcon(run.status);
      item.contextValue = ACTIVE.has(run.status) ? 'flowmetalRun.active' : 'flowmetalRun.ended';
      return item;
    }
    if (element.kind === 'event') {
      const event = this.event(element) || { seq: element.seq, kind: '' };
      const item = new vscode.TreeItem(`#${event.seq} ${event.kind}`, vscode.TreeItemCollapsibleState.None);
      item.id = `event:${element.runId}:${element.seq}`;
      item.description = describeEvent(event);
      item.tooltip = eventTooltip(event);
      item.iconPath = new vscode.ThemeIcon(EVENT_ICONS[event.kind] || 'circle-small');
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
      return lane ? lane.seqs.map((seq) => this.eventElement(element.runId, seq)) : [];
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
      const seqs = [...events.keys()].sort((a, b) => a - b);
      return [...children, ...seqs.map((seq) => this.eventElement(element.id, seq))];
    }
    const tasks = [...lanes.keys()].filter((task) => task !== 0).sort((a, b) => a - b);
    return [...children, ...lanes.get(0).seqs.map((seq) => this.eventElement(element.id, seq)),
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

  // Shows a run just started: reads it, opens the Runs view and selects it.
  async revealRun(runId) {
    if (!this.loaded.has(runId)) {
      try {
        await this.loadTrace(runId);
      } catch (_) {
        // Its first `flowmetal/runUpdated` brings it.
      }
    }
    const run = this.runs.get(runId);
    if (this.filter && run && run.entry !== this.filter) this.setFilter(undefined);
    this.updateMessage();
    this.changed.fire(undefined);
    await this.revealPanel();
    if (!run) return;
    try {
      await this.runsView.reveal(this.runElement(runId), { select: true, focus: false, expand: true });
    } catch (_) {
      // The view is hidden: nothing to select.
    }
  }

  async openLocation(location, preserveFocus = true) {
    if (!location || !location.uri) return;
    const options = { preserveFocus, preview: true };
    if (location.range) options.selection = toRange(location.range);
    try {
      await vscode.window.showTextDocument(vscode.Uri.parse(location.uri), options);
    } catch (err) {
      vscode.window.showErrorMessage(`Flowmetal: could not open ${location.uri} (${errorMessage(err)})`);
    }
  }

  // An event clicked or selected: its source in an editor, and the run's state
  // there in the State view. A click both selects and runs the item's command:
  // the second, right after the first, is the same one.
  showEvent(element) {
    const event = this.event(element);
    if (!event) return Promise.resolve(undefined);
    const last = this.shown;
    if (last && last.runId === element.runId && last.seq === event.seq && Date.now() - last.at < 1000) {
      return last.done;
    }
    const shown = { runId: element.runId, seq: event.seq, at: Date.now() };
    shown.done = this.readState(element, event);
    this.shown = shown;
    return shown.done;
  }

  async readState(element, event) {
    const ticket = ++this.stateTicket;
    const run = this.runs.get(element.runId) || { entry: shortId(element.runId) };
    const task = taskOf(event);
    const title = `${run.entry}${task ? ` · task ${task}` : ''} #${event.seq} ${event.kind}`;
    const opening = this.openLocation(event.location);
    this.stateTree.show(undefined);
    this.stateView.description = title;
    this.stateView.message = `Reading the state at #${event.seq}…`;
    let state;
    try {
      state = await this.request('flowmetal/stateAt', { runId: element.runId, seq: event.seq });
    } catch (err) {
      if (ticket === this.stateTicket) this.stateView.message = `No state at #${event.seq}: ${errorMessage(err)}`;
      await opening;
      return undefined;
    }
    if (ticket === this.stateTicket) {
      this.stateTree.show(state);
      this.stateView.description = state && state.via ? `${title} (${state.via})` : title;
      this.stateView.message = this.stateTree.roots.length ? undefined : 'Nothing is bound here.';
    }
    await opening;
    return state;
  }

  clearState() {
    this.stateTicket++;
    this.shown = undefined;
    this.stateTree.show(undefined);
    this.stateView.description = '';
    this.stateView.message = NO_STATE;
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
    if (this.output) this.output.dispose();
  }
}

module.exports = { RunsPanel, askArguments, describeEvent, stateElements };
