// Loads the VS Code extension's extension.js outside VS Code, with a stand-in
// `vscode` module, and records how it starts the Flowmetal language server:
// command, arguments, transport, document selector, restarts on settings
// changes, the restart command, and the message shown when the server cannot
// start. The extension holds no language logic, so this is all it does.
//
// Usage: node vscode_activate.js CACHE_DIR EXTENSION_DIR
//   CACHE_DIR holds node_modules with the real vscode-languageclient, whose
//   exports (LanguageClient, TransportKind) the extension must find.
// Prints JSON: {"transportKinds": {...}, "events": [...]}.
'use strict';

const path = require('path');
const Module = require('module');

const [cacheDir, extensionDir] = process.argv.slice(2);
const manifest = require(path.resolve(extensionDir, 'package.json'));

const events = [];
const record = (event) => events.push(JSON.parse(JSON.stringify(event)));

// Settings: the defaults come from the manifest, as in VS Code.
const userSettings = {};
const defaults = {};
for (const [key, spec] of Object.entries(manifest.contributes.configuration.properties)) {
  defaults[key] = spec.default;
}
const configListeners = [];
const commands = {};

const vscodeStub = {
  workspace: {
    getConfiguration(section) {
      return {
        get(key, fallback) {
          const full = `${section}.${key}`;
          if (full in userSettings) return userSettings[full];
          if (full in defaults) return defaults[full];
          return fallback;
        },
      };
    },
    onDidChangeConfiguration(listener) {
      configListeners.push(listener);
      return { dispose() {} };
    },
  },
  commands: {
    registerCommand(name, fn) {
      commands[name] = fn;
      record({ kind: 'registerCommand', name });
      return { dispose() {} };
    },
  },
  window: {
    showErrorMessage(message) {
      record({ kind: 'error', message });
      return Promise.resolve(undefined);
    },
  },
};

// The real vscode-languageclient needs a `vscode` module only to load: any
// class will do for that.
const loadOnlyVscode = new Proxy({}, {
  get: (_, key) => (key === '__esModule' ? false : typeof key === 'string' ? class {} : undefined),
});
const originalLoad = Module._load;
let loadingRealClient = false;
Module._load = function load(request, parent, isMain) {
  if (request === 'vscode') return loadingRealClient ? loadOnlyVscode : vscodeStub;
  if (request === 'vscode-languageclient/node' && !loadingRealClient) return fakeClientModule;
  return originalLoad.call(this, request, parent, isMain);
};

loadingRealClient = true;
const realClient = Module.createRequire(path.join(path.resolve(cacheDir), 'package.json'))(
  'vscode-languageclient/node'
);
loadingRealClient = false;
if (typeof realClient.LanguageClient !== 'function') {
  throw new Error('vscode-languageclient/node exports no LanguageClient');
}

let failNextStart = false;
let clientCount = 0;
class FakeLanguageClient {
  constructor(id, name, serverOptions, clientOptions) {
    this.n = ++clientCount;
    record({ kind: 'create', client: this.n, id, name, serverOptions, clientOptions });
  }
  async start() {
    record({ kind: 'start', client: this.n });
    if (failNextStart) {
      failNextStart = false;
      throw new Error('spawn flowmetal ENOENT');
    }
  }
  async stop() {
    record({ kind: 'stop', client: this.n });
  }
}
const fakeClientModule = { LanguageClient: FakeLanguageClient, TransportKind: realClient.TransportKind };

async function changeSettings(changes) {
  Object.assign(userSettings, changes);
  const keys = Object.keys(changes);
  const event = {
    affectsConfiguration: (section) =>
      keys.some((key) => key === section || key.startsWith(`${section}.`)),
  };
  record({ kind: 'settings', keys });
  for (const listener of configListeners) await listener(event);
}

async function main() {
  const extension = require(path.resolve(extensionDir, manifest.main));
  const context = { subscriptions: [], asAbsolutePath: (p) => path.resolve(extensionDir, p) };

  record({ kind: 'step', name: 'activate' });
  await extension.activate(context);
  record({ kind: 'subscriptions', count: context.subscriptions.length });

  record({ kind: 'step', name: 'change server settings' });
  await changeSettings({
    'flowmetal.server.path': '/opt/flowmetal/bin/flowmetal',
    'flowmetal.server.args': ['lsp', '--log-level', 'debug'],
  });

  record({ kind: 'step', name: 'change other settings' });
  await changeSettings({ 'editor.fontSize': 14 });

  record({ kind: 'step', name: 'restart command' });
  await commands['flowmetal.restartServer']();

  record({ kind: 'step', name: 'server fails to start' });
  failNextStart = true;
  await commands['flowmetal.restartServer']();

  record({ kind: 'step', name: 'deactivate' });
  await extension.deactivate();

  process.stdout.write(JSON.stringify({ transportKinds: realClient.TransportKind, events }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
