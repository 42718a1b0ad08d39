// Values as the side bar shows them: a Flowmetal literal, as the language
// server writes it (`[1 2]`, `{:a "x"}`, `(quote "sku-1" 1250 "EUR")`), split
// into a tree of parts, so that the State view can show a list, a map or a
// record as an item with its parts as children, and a tooltip can print it
// indented, instead of one escaped line.
//
// This only splits the printed text at its brackets and strings: it evaluates
// nothing and knows no types. A record prints as `(NAME VALUE ...)`, without
// its field names; the State gives them (`records` in docs/lsp-protocol.md)
// and they label the parts when known. A string whose text is a JSON object or
// array (a response body, a signal's body) is split as JSON. Text that does not
// read as a literal stays one leaf, shown as it is.
'use strict';

const OPEN = { '[': ']', '{': '}', '(': ')' };
const SPACE = /[\s,]/;

// The tokens of a literal, or null when it is not one (an unclosed string, say).
function tokens(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (SPACE.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return null;
      out.push(text.slice(i, j + 1));
      i = j + 1;
    } else if (c === '#' && text[i + 1] === '<') {
      const j = text.indexOf('>', i);
      if (j < 0) return null;
      out.push(text.slice(i, j + 1));
      i = j + 1;
    } else if (OPEN[c] || c === ']' || c === '}' || c === ')') {
      out.push(c);
      i++;
    } else {
      let j = i;
      while (j < text.length && !SPACE.test(text[j]) && !'[]{}()"'.includes(text[j])) j++;
      out.push(text.slice(i, j));
      i = j;
    }
  }
  return out;
}

// The text of a string literal ("a\nb" -> a, newline, b), or undefined.
function stringText(token) {
  if (typeof token !== 'string' || token.length < 2 || token[0] !== '"') return undefined;
  try {
    return JSON.parse(token.replace(/\\(?!["\\/bfnrtu])/g, '\\\\'));
  } catch (_) {
    return undefined;
  }
}

// A node: {text, kind: 'atom' | 'list' | 'map' | 'record' | 'form', head?, parts: [{key?, node}]}.
function parseTokens(list, at) {
  const token = list[at.i++];
  if (token === undefined) throw new Error('end');
  const close = OPEN[token];
  if (!close) {
    if (token === ']' || token === '}' || token === ')') throw new Error('unbalanced');
    return { kind: 'atom', text: token, parts: [] };
  }
  const items = [];
  while (list[at.i] !== close) {
    if (at.i >= list.length) throw new Error('unclosed');
    items.push(parseTokens(list, at));
  }
  at.i++;
  if (token === '[') return { kind: 'list', parts: items.map((node, i) => ({ key: `[${i}]`, node })) };
  if (token === '{') {
    if (items.length % 2) throw new Error('odd map');
    const parts = [];
    for (let i = 0; i < items.length; i += 2) parts.push({ key: show(items[i]), node: items[i + 1] });
    return { kind: 'map', parts };
  }
  // `(NAME v ...)`: a record's constructor and its fields, or another printed form.
  const [head, ...rest] = items;
  const name = head && head.kind === 'atom' ? head.text : undefined;
  return { kind: 'record', head: name, parts: rest.map((node, i) => ({ key: `[${i + 1}]`, node })) };
}

// The JSON value `value` as a node.
function jsonNode(value) {
  if (Array.isArray(value)) return { kind: 'list', json: true, parts: value.map((v, i) => ({ key: `[${i}]`, node: jsonNode(v) })) };
  if (value && typeof value === 'object') {
    return { kind: 'map', json: true, parts: Object.entries(value).map(([k, v]) => ({ key: JSON.stringify(k), node: jsonNode(v) })) };
  }
  return { kind: 'atom', text: JSON.stringify(value), parts: [] };
}

// The tree of a value's text, field names from `records` ({name: [field, ...]}).
// A string holding a JSON object or array gets that JSON as its parts.
function parseValue(text, records = {}) {
  const source = String(text == null ? '' : text);
  let node;
  try {
    const list = tokens(source);
    if (!list || !list.length) throw new Error('none');
    const at = { i: 0 };
    node = parseTokens(list, at);
    if (at.i !== list.length) throw new Error('trailing');
  } catch (_) {
    return { kind: 'atom', text: source, parts: [] };
  }
  return label(node, records);
}

function label(node, records) {
  if (node.kind === 'atom') {
    const string = stringText(node.text);
    const trimmed = typeof string === 'string' ? string.trim() : '';
    if ((trimmed.startsWith('{') && trimmed.endsWith('}')) || (trimmed.startsWith('[') && trimmed.endsWith(']'))) {
      try {
        const json = jsonNode(JSON.parse(trimmed));
        return { kind: 'atom', text: node.text, json: true, parts: json.parts, inner: json.kind };
      } catch (_) {
        // Not JSON: a plain string.
      }
    }
    return node;
  }
  const fields = node.kind === 'record' && node.head ? records[node.head] : undefined;
  node.parts = node.parts.map((part, i) => ({
    key: Array.isArray(fields) && fields.length === node.parts.length ? fields[i] : part.key,
    node: label(part.node, records),
  }));
  return node;
}

// A node's text on one line.
function show(node) {
  if (node.kind === 'atom') return node.text;
  if (node.json) {
    const inner = node.parts.map((p) => (node.kind === 'map' ? `${p.key}: ${show(p.node)}` : show(p.node)));
    return node.kind === 'map' ? `{${inner.join(', ')}}` : `[${inner.join(', ')}]`;
  }
  const inner = node.parts.map((p) => show(p.node));
  if (node.kind === 'list') return `[${inner.join(' ')}]`;
  if (node.kind === 'map') return `{${node.parts.map((p) => `${p.key} ${show(p.node)}`).join(' ')}}`;
  return `(${[node.head, ...inner].filter((x) => x !== undefined).join(' ')})`;
}

// A short account of a node's parts: "3 items", "2 keys", "quote".
function summary(node) {
  const n = node.parts.length;
  if (node.kind === 'record') return node.head || 'record';
  if (node.kind === 'map' || node.inner === 'map') return `${n} key${n === 1 ? '' : 's'}`;
  return `${n} item${n === 1 ? '' : 's'}`;
}

// The value printed over several lines, indented, when it is too long for one
// (`width` characters); a string's escapes are kept. A JSON body is printed as JSON.
function pretty(text, records = {}, width = 60) {
  return prettyNode(parseValue(text, records), width);
}

function prettyNode(top, width = 60) {
  const render = (node, indent) => {
    const flat = show(node);
    if (!node.parts.length || indent.length + flat.length <= width) {
      if (node.kind === 'atom' && node.json && node.parts.length) {
        return `${node.text}\n${indent}  as JSON: ${render({ kind: node.inner, json: true, parts: node.parts }, `${indent}  `).trimStart()}`;
      }
      return flat;
    }
    const next = `${indent}  `;
    if (node.kind === 'atom') {
      return `${node.text}\n${indent}  as JSON: ${render({ kind: node.inner, json: true, parts: node.parts }, next).trimStart()}`;
    }
    if (node.json) {
      const lines = node.parts.map((p) => `${next}${node.kind === 'map' ? `${p.key}: ` : ''}${render(p.node, next)}`);
      return node.kind === 'map' ? `{\n${lines.join(',\n')}\n${indent}}` : `[\n${lines.join(',\n')}\n${indent}]`;
    }
    if (node.kind === 'list') return `[${node.parts.map((p, i) => (i ? next : '') + render(p.node, next)).join('\n')}]`;
    if (node.kind === 'map') {
      return `{${node.parts.map((p, i) => `${i ? next : ''}${p.key} ${render(p.node, next)}`).join('\n')}}`;
    }
    return `(${node.head || ''}\n${node.parts.map((p) => `${next}${render(p.node, next)}`).join('\n')})`;
  };
  return render(top, '');
}

module.exports = { parseValue, pretty, prettyNode, show, summary, stringText };
