// What the Runs view makes of a run's log before drawing it: the rows, the
// times, and the filter. Plain functions of the protocol's shapes
// (docs/lsp-protocol.md), without VS Code, so that they are tested alone.
//
// Rows. The log has an event for each thing that happened; the view draws one
// row for each thing a user asks about. A step's `step-requested` and its
// `step-completed` (the same `step`) are one row, from the request's place in
// the log: what was called and what it answered, and how long that took; a
// `timer-set` and the `timer-fired` or `timer-cancelled` of its step are one
// row too. A row with no end yet is pending: how long it has waited so far,
// and for a timer, when it is due. Every other event is a row of its own.
// A row is known by its first event's seq.
//
// Times. A run's events are shown relative to its start (`+1.2 s`); absolute
// local times are for tooltips. Durations read `8 ms`, `1.2 s`, `3 min 05 s`,
// `2 h 05 min`.
'use strict';

const PAIRS = {
  'step-requested': ['step-completed'],
  'timer-set': ['timer-fired', 'timer-cancelled'],
};

function ms(when) {
  if (when == null || when === '') return NaN;
  return typeof when === 'number' ? when : new Date(when).getTime();
}

function duration(millis) {
  if (!Number.isFinite(millis)) return '';
  const t = Math.max(0, Math.round(millis));
  if (t < 1000) return `${t} ms`;
  if (t < 10000) return `${(t / 1000).toFixed(1)} s`;
  const s = Math.round(t / 1000);
  if (s < 60) return `${s} s`;
  const pad = (n) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

// `when` after `start`, as "+1.2 s".
function offset(when, start) {
  const d = ms(when) - ms(start);
  return Number.isFinite(d) ? `+${duration(d)}` : '';
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

// The local date and time with milliseconds, for tooltips.
function localTime(when) {
  const t = new Date(when);
  if (when == null || Number.isNaN(t.getTime())) return '';
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

// The rows of a run's events (sorted by seq): [{seq, head, end, within}], where
// `head` is the row's first event, `end` the event that closed it (or
// undefined: pending; null: a row of one event), `within` the seqs it holds.
function rowsOf(events) {
  const rows = [];
  const open = new Map(); // "kind:step" -> row waiting for its end
  for (const event of events) {
    const step = event.step;
    let closed = false;
    if (step != null) {
      for (const [first, ends] of Object.entries(PAIRS)) {
        if (!ends.includes(event.kind)) continue;
        const row = open.get(`${first}:${step}`);
        if (row) {
          row.end = event;
          row.within.push(event.seq);
          open.delete(`${first}:${step}`);
          closed = true;
        }
      }
    }
    if (closed) continue;
    const pairs = PAIRS[event.kind] && step != null;
    const row = { seq: event.seq, head: event, end: pairs ? undefined : null, within: [event.seq] };
    if (pairs) open.set(`${event.kind}:${step}`, row);
    rows.push(row);
  }
  return rows;
}

// What a timer row says of its due time, now.
function dueText(row, now) {
  const due = row.head.data ? row.head.data.due : undefined;
  const at = typeof due === 'number' ? due * 1000 : ms(due);
  if (!Number.isFinite(at)) return '';
  const left = at - now;
  return left > 0 ? `due ${clock(at)} (in ${duration(left)})` : `due ${clock(at)} (now)`;
}

// -- the filter --

const STATUSES = ['pending', 'running', 'waiting', 'completed', 'failed', 'cancelled'];

// A filter as typed: `status:failed,waiting entry:demo/main words`. Answers
// {statuses, entry, text} (each undefined when not given), or {error}.
function parseFilter(input) {
  const filter = { statuses: undefined, entry: undefined, text: undefined };
  const words = [];
  for (const word of String(input || '').trim().split(/\s+/).filter(Boolean)) {
    const match = /^(status|entry):(.*)$/.exec(word);
    if (!match) {
      words.push(word);
    } else if (match[1] === 'status') {
      const wanted = match[2].split(',').filter(Boolean).map((s) => s.toLowerCase());
      const wrong = wanted.filter((s) => s !== 'active' && !STATUSES.includes(s));
      if (!wanted.length || wrong.length) {
        return { error: `${wrong.length ? `\`${wrong[0]}\` is not a status` : 'status: needs a status'}: ` +
          `one of ${STATUSES.join(', ')}, or active` };
      }
      filter.statuses = [...new Set(wanted.flatMap((s) => (s === 'active' ? ['pending', 'running', 'waiting'] : [s])))];
    } else {
      if (!match[2]) return { error: 'entry: needs a function, such as entry:demo/main' };
      filter.entry = match[2];
    }
  }
  if (words.length) filter.text = words.join(' ');
  return filter;
}

// The filter as the view's description says it, and as the filter box shows it again.
function filterText(filter) {
  if (!filter) return '';
  const parts = [];
  if (filter.statuses) parts.push(`status:${filter.statuses.join(',')}`);
  if (filter.entry) parts.push(`entry:${filter.entry}`);
  if (filter.text) parts.push(filter.text);
  return parts.join(' ');
}

function isEmpty(filter) {
  return !filter || (!filter.statuses && !filter.entry && !filter.text);
}

// Whether `run` passes: its status, its entry (`name` matches `package/name`
// too), and the text anywhere in its entry, id, arguments, result or error
// (case-insensitive).
function matches(filter, run) {
  if (isEmpty(filter)) return true;
  if (!run) return false;
  if (filter.statuses && !filter.statuses.includes(run.status)) return false;
  if (filter.entry && run.entry !== filter.entry && String(run.entry || '').split('/').pop() !== filter.entry) {
    return false;
  }
  if (filter.text) {
    const hay = [run.entry, run.id, JSON.stringify(run.args || []), run.result, run.error]
      .filter((x) => x != null).join('\n').toLowerCase();
    if (!filter.text.toLowerCase().split(/\s+/).every((word) => hay.includes(word))) return false;
  }
  return true;
}

module.exports = {
  duration, offset, clock, localTime, rowsOf, dueText, parseFilter, filterText, matches, isEmpty, ms, STATUSES,
};
