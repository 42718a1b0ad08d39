// Marks the source of the event the State view shows, as VS Code's debugger
// marks the current line: the whole line in the theme's stack frame colour
// (`editor.stackFrameHighlightBackground`, what a paused debugger paints), the
// line of a fault (a `run-failed` or `task-failed` event) in the error colour,
// each with a mark in the overview ruler. One line is marked at a time, in
// the editor the event was opened in; a new event moves the mark, and
// clearing the State view removes it.
'use strict';

const vscode = require('vscode');

class Highlighter {
  constructor() {
    this.current = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      backgroundColor: new vscode.ThemeColor('editor.stackFrameHighlightBackground'),
      overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.rangeHighlightForeground'),
      overviewRulerLane: vscode.OverviewRulerLane ? vscode.OverviewRulerLane.Full : undefined,
    });
    this.fault = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      backgroundColor: new vscode.ThemeColor('inputValidation.errorBackground'),
      overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.errorForeground'),
      overviewRulerLane: vscode.OverviewRulerLane ? vscode.OverviewRulerLane.Full : undefined,
    });
    this.marked = []; // the editors marked now
  }

  // Marks `range` (a vscode.Range) in `editor`; `failed` paints it as a fault.
  show(editor, range, failed) {
    this.clear();
    if (!editor || typeof editor.setDecorations !== 'function' || !range) return;
    const lines = new vscode.Range(range.start.line, 0, range.start.line, 0); // its first line, as a debugger
    editor.setDecorations(failed ? this.fault : this.current, [lines]);
    editor.setDecorations(failed ? this.current : this.fault, []);
    this.marked = [editor];
  }

  clear() {
    for (const editor of this.marked) {
      editor.setDecorations(this.current, []);
      editor.setDecorations(this.fault, []);
    }
    this.marked = [];
  }

  dispose() {
    this.current.dispose();
    this.fault.dispose();
  }
}

module.exports = { Highlighter };
