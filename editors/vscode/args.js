// Asking for the arguments of a run (the `▶ Run…` and `Debug…` lenses): one
// input box per parameter of the entry, in order.
//
// - Each argument is checked as it is typed: the language server reads the
//   text as the run would and says what is wrong with it
//   (`flowmetal/checkArgument`, docs/lsp-protocol.md). Nothing here reads
//   Flowmetal; a required parameter left empty is the one thing said here.
// - The title keeps the answers given so far in sight
//   ("Run demo/main (2/2) · who = "ann""): the prompt under the input gives way
//   to the checker's message while the text is wrong, the title does not.
// - An optional parameter's `:default` is shown (placeholder and prompt); an
//   empty answer takes it, and the defaults of the parameters after it.
// - Escape goes back to the previous argument, its answer still there; Escape
//   on the first cancels.
// - The arguments last given to an entry are remembered in the workspace's
//   state and offered again, each as its box's text, the next time.
'use strict';

const vscode = require('vscode');

const STATE_KEY = 'flowmetal.lastArguments'; // workspaceState: {entry: {parameter name: text}}
const EXAMPLE = 'a Flowmetal literal, such as "host-1", 42 or [+reboot+]';

// The arguments last given to `entry`: {parameter name: text}.
function remembered(state, entry) {
  const all = state && typeof state.get === 'function' ? state.get(STATE_KEY) : undefined;
  const mine = all && typeof all === 'object' ? all[entry] : undefined;
  return mine && typeof mine === 'object' ? mine : {};
}

async function remember(state, entry, params, values) {
  if (!state || typeof state.update !== 'function') return;
  const mine = {};
  values.forEach((text, i) => { mine[params[i].name] = text; });
  const all = state.get(STATE_KEY);
  try {
    await state.update(STATE_KEY, { ...(all && typeof all === 'object' ? all : {}), [entry]: mine });
  } catch (_) {
    // Not remembered: the run goes on all the same.
  }
}

function promptOf(param, more) {
  let prompt = `${param.name} : ${param.type}`;
  if (!param.optional) return prompt;
  const given = typeof param.default === 'string' && param.default ? `default ${param.default}` : 'its default';
  const after = more ? ' and the defaults after it' : '';
  return `${prompt} (optional, ${given}: leave empty for it${after})`;
}

// What the input box says under `text`: undefined when it is fine (or cannot be checked).
function validate(text, param, entry, options) {
  if (!String(text).trim()) {
    return param.optional ? undefined : `\`${param.name}\` needs a value: a Flowmetal literal`;
  }
  if (typeof options.check !== 'function' || !options.uri) return undefined;
  // A server that cannot answer (an older one, one restarting) leaves it to the run to say.
  return Promise.resolve(options.check({ uri: options.uri, entry, param: param.name, text: String(text) })).then(
    (answer) => (answer && typeof answer.message === 'string' && answer.message ? answer.message : undefined),
    () => undefined
  );
}

// Asks for the arguments of `entry` (`package/name`), whose parameters are
// `params` ([{name, type, optional, default}], as the Run lens gives them).
// `options`: {verb ('Run'), uri (the entry's file), state (a Memento: the
// workspace's state), check (params -> a promise of {message}:
// `flowmetal/checkArgument`)}. Answers the arguments, Flowmetal literals as
// typed, or undefined when the user escapes from the first.
async function askArguments(entry, params, options = {}) {
  const verb = options.verb || 'Run';
  const last = remembered(options.state, entry);
  const values = [];
  let i = 0;
  while (i < params.length) {
    const param = params[i] || {};
    const earlier = values.slice(0, i).map((text, k) => `${params[k].name} = ${text}`);
    const previous = values[i] !== undefined ? values[i] : last[param.name];
    const value = await vscode.window.showInputBox({
      title: [`${verb} ${entry} (${i + 1}/${params.length})`, ...earlier].join(' · '),
      prompt: promptOf(param, i < params.length - 1),
      value: typeof previous === 'string' ? previous : '',
      placeHolder: param.optional && param.default ? `empty: the default, ${param.default}` : EXAMPLE,
      ignoreFocusOut: true,
      validateInput: (text) => validate(text, param, entry, options),
    });
    if (value === undefined) {
      if (i === 0) return undefined;
      i -= 1; // back to the previous argument
      continue;
    }
    const text = value.trim();
    if (!text && param.optional) break;
    values[i] = text;
    i += 1;
  }
  values.length = i;
  await remember(options.state, entry, params, values);
  return values;
}

module.exports = { askArguments, STATE_KEY };
