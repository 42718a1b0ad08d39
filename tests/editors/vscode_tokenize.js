// Tokenizes Flowmetal text with the VS Code extension's TextMate grammar,
// using the same engine as VS Code (vscode-textmate + vscode-oniguruma), so
// the tests can check the scopes the editor will see. The grammar only
// highlights: all language logic lives in the language server.
//
// Usage: node vscode_tokenize.js CACHE_DIR GRAMMAR_JSON SAMPLE_FILE
//   CACHE_DIR holds node_modules with vscode-textmate and vscode-oniguruma.
// Prints JSON: {"regexErrors": [...], "lines": [[{"text", "scopes"}...]...]}.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

async function main() {
  const [cacheDir, grammarPath, samplePath] = process.argv.slice(2);
  const req = createRequire(path.join(path.resolve(cacheDir), 'package.json'));
  const vsctm = req('vscode-textmate');
  const onig = req('vscode-oniguruma');

  const wasm = fs.readFileSync(req.resolve('vscode-oniguruma/release/onig.wasm'));
  await onig.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));

  // Every regex of the grammar must compile in Oniguruma, VS Code's engine.
  const grammarText = fs.readFileSync(grammarPath, 'utf8');
  const regexErrors = [];
  (function walk(node, where) {
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${where}[${i}]`));
    } else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (['match', 'begin', 'end', 'while'].includes(key) && typeof value === 'string') {
          try {
            new onig.OnigScanner([value]).dispose();
          } catch (err) {
            regexErrors.push({ where: `${where}.${key}`, regex: value, error: String(err) });
          }
        } else {
          walk(value, `${where}.${key}`);
        }
      }
    }
  })(JSON.parse(grammarText), '$');

  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new onig.OnigScanner(patterns),
      createOnigString: (s) => new onig.OnigString(s),
    }),
    loadGrammar: async (scopeName) =>
      scopeName === 'source.flowmetal' ? vsctm.parseRawGrammar(grammarText, grammarPath) : null,
  });
  const grammar = await registry.loadGrammar('source.flowmetal');
  if (!grammar) {
    throw new Error('grammar source.flowmetal did not load');
  }

  const lines = [];
  let ruleStack = vsctm.INITIAL;
  for (const line of fs.readFileSync(samplePath, 'utf8').split(/\r?\n/)) {
    const result = grammar.tokenizeLine(line, ruleStack);
    lines.push(
      result.tokens.map((t) => ({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes }))
    );
    ruleStack = result.ruleStack;
  }
  process.stdout.write(JSON.stringify({ regexErrors, lines }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
