// The start-up trace: with the setting `flowmetal.trace.startup` on, the
// extension logs when it reaches each step of its start, in the language
// client's output channel ("Flowmetal Language Server"), one line each:
//
//   startup STEP MILLISECONDS
//
// MILLISECONDS since the epoch (Date.now()), so that a tool outside VS Code
// on the same machine (bench/bench_vscode_start.py, which reads the channel's
// log file) can set them beside its own clock. The steps: `loaded` (the
// bundle's evaluation begun), `required` (its modules evaluated), `activate`, `client` (the language client created and
// started: the server spawned), `token` (the API token read from secret
// storage), `initialized` (the server answered `initialize`), `diagnostics`
// (the first diagnostics received). Off, it records nothing. Steps reached
// before the channel exists are kept until it does.
'use strict';

const vscode = require('vscode');

class StartupTrace {
  constructor(loaded) {
    this.on = vscode.workspace.getConfiguration('flowmetal').get('trace.startup') === true;
    this.pending = [];
    this.channel = null;
    this.seen = new Set();
    if (loaded !== undefined) this.mark('loaded', loaded);
  }

  // The first time STEP is reached (later ones, on a restart, are no start-up).
  mark(step, at = Date.now()) {
    if (!this.on || this.seen.has(step)) return;
    this.seen.add(step);
    const line = `startup ${step} ${at}`;
    if (this.channel) this.channel.appendLine(line);
    else this.pending.push(line);
  }

  // The channel to log in, once the language client has one.
  attach(channel) {
    if (!this.on || this.channel || !channel) return;
    this.channel = channel;
    for (const line of this.pending.splice(0)) channel.appendLine(line);
  }
}

module.exports = { StartupTrace };
