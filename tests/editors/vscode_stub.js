// A stand-in for the `vscode` module and for vscode-languageclient's
// LanguageClient, enough to load the VS Code extension outside VS Code and
// watch what it does: the commands it registers, the views it fills, the
// input boxes and messages it shows (with what they say to the text typed),
// the workspace state it keeps, the editors it opens, the clients it
// creates and the requests they send, the debug adapters and sessions it
// starts, and the settings and secrets it writes.
//
// install(cacheDir, extensionDir) hooks `require` so that the extension gets
// these stand-ins, and answers an object to drive and inspect them.
'use strict';

const path = require('path');
const Module = require('module');

function install(cacheDir, extensionDir) {
  const manifest = require(path.resolve(extensionDir, 'package.json'));
  const events = [];
  const record = (event) => {
    events.push(JSON.parse(JSON.stringify(event)));
  };

  // Settings: the defaults come from the manifest, as in VS Code. The
  // workspace's own settings count only in a trusted workspace for the
  // settings the manifest restricts, as in VS Code's Restricted Mode.
  const userSettings = {};
  const workspaceSettings = {};
  const restricted = new Set(manifest.capabilities.untrustedWorkspaces.restrictedConfigurations);
  const defaults = {};
  for (const [key, spec] of Object.entries(manifest.contributes.configuration.properties)) {
    defaults[key] = spec.default;
  }
  const configListeners = [];
  const trustListeners = [];
  const commands = {};
  const views = {};
  const clients = [];

  // Answers the stand-in gives, in order, to showInputBox and to the message boxes.
  const inputAnswers = [];
  const messageAnswers = [];

  class EventEmitter {
    constructor() {
      this.listeners = [];
      this.event = (listener) => {
        this.listeners.push(listener);
        return { dispose: () => { this.listeners = this.listeners.filter((l) => l !== listener); } };
      };
    }
    fire(value) {
      for (const listener of [...this.listeners]) listener(value);
    }
    dispose() {
      this.listeners = [];
    }
  }

  class TreeItem {
    constructor(label, collapsibleState) {
      this.label = label;
      this.collapsibleState = collapsibleState;
    }
  }

  class ThemeColor {
    constructor(id) {
      this.id = id;
    }
  }

  class ThemeIcon {
    constructor(id, color) {
      this.id = id;
      this.color = color;
    }
  }

  class Range {
    constructor(startLine, startCharacter, endLine, endCharacter) {
      this.start = { line: startLine, character: startCharacter };
      this.end = { line: endLine, character: endCharacter };
    }
  }

  const Uri = {
    parse(text) {
      const scheme = String(text).split(':', 1)[0];
      const fsPath = scheme === 'file' ? decodeURIComponent(new URL(String(text)).pathname) : undefined;
      return { scheme, fsPath, toString: () => String(text), toJSON: () => String(text) };
    },
    file(fsPath) {
      return Uri.parse(`file://${fsPath.split('/').map(encodeURIComponent).join('/')}`);
    },
  };

  // The debugger's side: the adapter executable a factory describes, and what
  // startDebugging was asked to start.
  class DebugAdapterExecutable {
    constructor(command, args, options) {
      this.command = command;
      this.args = args;
      this.options = options;
    }
  }
  // Editors opened (showTextDocument), with the decorations set on them: {type: [ranges]}.
  const editors = [];
  const decorationTypes = [];
  const decorationProviders = [];
  function makeEditor(uri, options) {
    const editor = {
      document: { uri: { toString: () => String(uri) } },
      options,
      decorations: {},
      setDecorations(type, ranges) {
        editor.decorations[type.key] = ranges.map((r) => ({ start: r.start, end: r.end }));
        record({ kind: 'setDecorations', uri: String(uri), type: type.key, options: type.options,
          ranges: editor.decorations[type.key] });
      },
    };
    return editor;
  }
  const debugFactories = {};
  const debugProviders = {};
  const quickPickAnswers = [];

  function createTreeView(id, options) {
    const selectionChanged = new EventEmitter();
    const view = {
      id,
      onDidChangeSelection: selectionChanged.event,
      // What a click or the arrow keys do to the selection.
      select(elements) {
        view.selection = elements;
        selectionChanged.fire({ selection: elements });
      },
      provider: options.treeDataProvider,
      options,
      message: undefined,
      description: undefined,
      selection: [],
      reveals: [],
      async reveal(element, revealOptions) {
        view.reveals.push({ element, options: revealOptions });
        record({ kind: 'reveal', view: id, element, options: revealOptions });
        // Selecting, as VS Code does, tells the selection's listeners.
        if (revealOptions && revealOptions.select) view.select([element]);
      },
      dispose() {},
    };
    views[id] = view;
    record({ kind: 'createTreeView', id, showCollapseAll: Boolean(options.showCollapseAll) });
    return view;
  }

  function message(level) {
    return (text, ...items) => {
      record({ kind: level, message: text, items });
      return Promise.resolve(messageAnswers.length ? messageAnswers.shift() : undefined);
    };
  }

  const outputs = [];
  // The extension's workspaceState (context.workspaceState): a Memento.
  const workspaceValues = {};
  const workspaceState = {
    get(key, fallback) {
      return key in workspaceValues ? JSON.parse(JSON.stringify(workspaceValues[key])) : fallback;
    },
    async update(key, value) {
      workspaceValues[key] = value;
      record({ kind: 'workspaceState', key, value });
    },
    keys: () => Object.keys(workspaceValues),
  };
  const ConfigurationTarget = { Global: 1, Workspace: 2, WorkspaceFolder: 3 };

  // The extension's SecretStorage (context.secrets), shared by every window.
  const secretValues = {};
  const secretsChanged = new EventEmitter();
  const secrets = {
    // Answers once env.secretsGate (a promise, when one is set) has settled, as
    // a slow secret storage would.
    async get(key) {
      if (env.secretsGate) await env.secretsGate;
      return secretValues[key];
    },
    async store(key, value) {
      secretValues[key] = value;
      record({ kind: 'storeSecret', key, value });
      secretsChanged.fire({ key });
    },
    async delete(key) {
      delete secretValues[key];
      record({ kind: 'deleteSecret', key });
      secretsChanged.fire({ key });
    },
    onDidChange: secretsChanged.event,
  };

  const vscode = {
    EventEmitter,
    TreeItem,
    TreeItemCollapsibleState: { None: 0, Collapsed: 1, Expanded: 2 },
    ThemeIcon,
    ThemeColor,
    Range,
    Uri,
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ConfigurationTarget,
    DebugAdapterExecutable,
    debug: {
      registerDebugAdapterDescriptorFactory(type, factory) {
        debugFactories[type] = factory;
        record({ kind: 'registerDebugAdapterDescriptorFactory', type });
        return { dispose() { delete debugFactories[type]; } };
      },
      registerDebugConfigurationProvider(type, provider) {
        debugProviders[type] = provider;
        record({ kind: 'registerDebugConfigurationProvider', type });
        return { dispose() { delete debugProviders[type]; } };
      },
      // As VS Code does: the provider resolves the configuration, then the session starts.
      async startDebugging(folder, config) {
        const provider = debugProviders[config.type];
        const resolved = provider ? await provider.resolveDebugConfiguration(folder, config) : config;
        record({ kind: 'startDebugging', folder: folder ? folder.name : null, config, resolved });
        return resolved !== undefined && resolved !== null;
      },
    },
    workspace: {
      workspaceFolders: undefined,
      textDocuments: [],
      getConfiguration(section) {
        return {
          get(key, fallback) {
            const full = `${section}.${key}`;
            const workspaceCounts = vscode.workspace.isTrusted || !restricted.has(full);
            if (workspaceCounts && full in workspaceSettings) return workspaceSettings[full];
            if (full in userSettings) return userSettings[full];
            if (full in defaults) return defaults[full];
            return fallback;
          },
          inspect(key) {
            const full = `${section}.${key}`;
            return { key: full, defaultValue: defaults[full], globalValue: userSettings[full],
              workspaceValue: workspaceSettings[full] };
          },
          // Writes the user's or the workspace's settings file; then, as in
          // VS Code, the change is announced.
          async update(key, value, target) {
            const full = `${section}.${key}`;
            const where = target === ConfigurationTarget.Workspace ? workspaceSettings : userSettings;
            if (env.failUpdates) throw new Error('Unable to write into the settings file');
            if (value === undefined) delete where[full];
            else where[full] = value;
            record({ kind: 'updateSetting', key: full, value: value === undefined ? null : value,
              target: target === ConfigurationTarget.Workspace ? 'workspace' : 'user' });
            await env.announceSettings([full]);
          },
        };
      },
      onDidChangeConfiguration(listener) {
        configListeners.push(listener);
        return { dispose() {} };
      },
      // Workspace trust: not trusted until a script calls env.grantTrust().
      isTrusted: false,
      onDidGrantWorkspaceTrust(listener) {
        trustListeners.push(listener);
        return { dispose() {} };
      },
    },
    commands: {
      registerCommand(name, fn) {
        if (name in commands) throw new Error(`command '${name}' already exists`);
        commands[name] = fn;
        record({ kind: 'registerCommand', name });
        return { dispose() { delete commands[name]; } };
      },
      executeCommand(name, ...args) {
        record({ kind: 'executeCommand', name, args });
        return Promise.resolve(commands[name] ? commands[name](...args) : undefined);
      },
    },
    window: {
      showErrorMessage: message('error'),
      showWarningMessage: message('warning'),
      showInformationMessage: message('info'),
      async showInputBox(options) {
        const answer = inputAnswers.length ? inputAnswers.shift() : undefined;
        // What the box says to a text (validateInput may answer a promise, as VS Code allows).
        const validate = async (text) => (options.validateInput ? options.validateInput(text) : undefined);
        record({
          kind: 'inputBox',
          title: options.title,
          prompt: options.prompt,
          placeHolder: options.placeHolder,
          value: options.value,
          password: Boolean(options.password),
          // What the box says to an empty answer, to a typed one, and to the answer given.
          validateEmpty: await validate(''),
          validateTyped: await validate('1'),
          validateAnswer: answer === undefined ? undefined : await validate(answer),
          answer,
        });
        return answer;
      },
      createTreeView,
      showQuickPick(items, options) {
        const answer = quickPickAnswers.length ? quickPickAnswers.shift() : undefined;
        const picked = typeof answer === 'number' ? items[answer] : undefined;
        record({ kind: 'quickPick', title: options && options.title,
          items: items.map((item) => ({ label: item.label, description: item.description })),
          picked: picked ? picked.label : null });
        return Promise.resolve(picked);
      },
      showTextDocument(uri, options) {
        record({ kind: 'showTextDocument', uri: String(uri), options });
        let editor = editors.find((e) => e.document.uri.toString() === String(uri));
        if (!editor) {
          editor = makeEditor(uri, options);
          editors.push(editor);
        }
        vscode.window.visibleTextEditors = [editor];
        return Promise.resolve(editor);
      },
      visibleTextEditors: [],
      createTextEditorDecorationType(options) {
        const type = { key: `decoration-${decorationTypes.length + 1}`, options: JSON.parse(JSON.stringify(options)),
          dispose() {} };
        decorationTypes.push(type);
        return type;
      },
      registerFileDecorationProvider(provider) {
        decorationProviders.push(provider);
        return { dispose() {} };
      },
      createOutputChannel(name) {
        const channel = {
          name,
          lines: [],
          appendLine(line) { channel.lines.push(line); },
          show() { record({ kind: 'showOutput', name }); },
          dispose() {},
        };
        outputs.push(channel);
        return channel;
      },
      withProgress(options, task) {
        record({ kind: 'progress', title: options.title });
        return Promise.resolve(task({ report() {} }, { isCancellationRequested: false }));
      },
    },
  };

  // The real vscode-languageclient needs a `vscode` module only to load: any
  // class will do for that. It says it is an ES module so that TypeScript's
  // `import * as` (__importStar) takes it as it is rather than copying its
  // own properties, of which a proxy has none.
  const loadOnlyVscode = new Proxy({}, {
    get: (_, key) => (key === '__esModule' ? true : typeof key === 'string' ? class {} : undefined),
  });
  const originalLoad = Module._load;
  let loadingRealClient = false;
  Module._load = function load(request, parent, isMain) {
    if (request === 'vscode') return loadingRealClient ? loadOnlyVscode : vscode;
    if (request === 'vscode-languageclient/node' && !loadingRealClient) return fakeClientModule;
    return originalLoad.call(this, request, parent, isMain);
  };
  loadingRealClient = true;
  const realClient = Module.createRequire(path.join(path.resolve(cacheDir), 'package.json'))(
    'vscode-languageclient/node'
  );
  loadingRealClient = false;
  for (const name of ['LanguageClient', 'TransportKind', 'RevealOutputChannelOn']) {
    if (realClient[name] === undefined) throw new Error(`vscode-languageclient/node exports no ${name}`);
  }
  const requireFromCache = Module.createRequire(path.join(path.resolve(cacheDir), 'package.json'));

  // How fake clients answer requests: a function (client, method, params) -> answer
  // (or a promise of it); by default, no runs.
  const env = {
    manifest,
    events,
    record,
    commands,
    views,
    clients,
    outputs,
    editors,
    decorationTypes,
    decorationProviders,
    userSettings,
    workspaceSettings,
    secrets,
    secretValues,
    workspaceState,
    workspaceValues,
    failUpdates: false,
    inputAnswers,
    messageAnswers,
    quickPickAnswers,
    debugFactories,
    debugProviders,
    realClient,
    requireFromCache,
    vscode,
    failNextStart: false,
    respond: (client, method) => (method === 'flowmetal/runs' ? [] : null),
    // The user edits settings (in the workspace's settings file with `workspace`).
    async changeSettings(changes, workspace = false) {
      Object.assign(workspace ? workspaceSettings : userSettings, changes);
      record({ kind: 'settings', keys: Object.keys(changes) });
      await env.announceSettings(Object.keys(changes));
    },
    async announceSettings(keys) {
      const event = {
        affectsConfiguration: (section) => keys.some((key) => key === section || key.startsWith(`${section}.`)),
      };
      for (const listener of configListeners) await listener(event);
    },
    // Secrets another window stores.
    async storeSecretElsewhere(key, value) {
      secretValues[key] = value;
      record({ kind: 'secretElsewhere', key });
      for (const listener of [...secretsChanged.listeners]) await listener({ key });
    },
    async grantTrust() {
      vscode.workspace.isTrusted = true;
      record({ kind: 'trust' });
      for (const listener of trustListeners) await listener();
    },
  };

  class FakeLanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      this.n = clients.length + 1;
      this.name = name;
      this.clientOptions = clientOptions;
      this.handlers = {};
      clients.push(this);
      record({ kind: 'create', client: this.n, id, name, serverOptions, clientOptions });
    }
    // As vscode-languageclient's: the server spawned (createMessageTransports,
    // which the extension's client may extend), then `initialize` sent with the
    // initializationOptions (a function is called then).
    async start() {
      record({ kind: 'start', client: this.n });
      if (env.failNextStart) {
        env.failNextStart = false;
        throw new Error('spawn flowmetal ENOENT');
      }
      await this.createMessageTransports('utf-8');
      const options = this.clientOptions.initializationOptions;
      this.initializationOptions = typeof options === 'function' ? options() : options;
      record({ kind: 'initialize', client: this.n, initializationOptions: this.initializationOptions });
    }
    async createMessageTransports() {
      return {};
    }
    // Made when first asked for, as vscode-languageclient's.
    get outputChannel() {
      if (!this.channel) this.channel = vscode.window.createOutputChannel(this.name);
      return this.channel;
    }
    async stop() {
      record({ kind: 'stop', client: this.n });
    }
    onNotification(method, handler) {
      this.handlers[method] = handler;
      return { dispose: () => { if (this.handlers[method] === handler) delete this.handlers[method]; } };
    }
    // What the server would send: calls the handler the extension registered, if any.
    notify(method, params) {
      const handler = this.handlers[method];
      if (handler) handler(params);
      return Boolean(handler);
    }
    async sendRequest(method, params) {
      record({ kind: 'request', client: this.n, method, params });
      return env.respond(this, method, params);
    }
    async sendNotification(method, params) {
      record({ kind: 'notification', client: this.n, method, params });
    }
  }
  env.FakeLanguageClient = FakeLanguageClient;
  // The client class the extension gets: the fake above, unless a script sets
  // env.LanguageClient before it loads the extension.
  const fakeClientModule = {
    get LanguageClient() { return env.LanguageClient || FakeLanguageClient; },
    TransportKind: realClient.TransportKind,
    RevealOutputChannelOn: realClient.RevealOutputChannelOn,
  };

  labelColor = (uri) => {
    for (const provider of decorationProviders) {
      const decoration = provider.provideFileDecoration(uri);
      if (decoration && decoration.color) return decoration.color.id;
    }
    return undefined;
  };
  return env;
}

// A plain picture of a tree view's items, as VS Code would show them: the
// children of `element` (the roots without it), each with its own children
// when `expand(element, item)` says so.
let labelColor = () => undefined;

async function render(provider, element, expand = () => false) {
  const out = [];
  for (const child of (await provider.getChildren(element)) || []) {
    const item = await provider.getTreeItem(child);
    const node = {
      label: item.label,
      description: item.description,
      tooltip: item.tooltip,
      id: item.id,
      icon: item.iconPath && item.iconPath.id,
      iconColor: item.iconPath && item.iconPath.color ? item.iconPath.color.id : undefined,
      contextValue: item.contextValue,
      collapsible: item.collapsibleState,
      // The colour a FileDecorationProvider gives the label (failed runs and events: red).
      labelColor: item.resourceUri ? labelColor(item.resourceUri) : undefined,
      command: item.command ? { command: item.command.command, arguments: item.command.arguments } : undefined,
    };
    if (expand(child, item)) node.children = await render(provider, child, expand);
    out.push(JSON.parse(JSON.stringify(node)));
  }
  return out;
}

module.exports = { install, render };
