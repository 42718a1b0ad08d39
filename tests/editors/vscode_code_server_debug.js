// Drives VS Code itself (code-server, in headless Chromium through
// playwright-core) to debug a recorded run with the Flowmetal extension: a
// breakpoint set in demo.flow, "Debug Run" clicked on the run in the Runs view,
// the editor stopped at the breakpoint with the Variables and Call Stack views
// filled by `flowmetal dap`, then the Debug toolbar's Step Back.
//
// Usage: node vscode_code_server_debug.js NODE_MODULES URL FOLDER SHOTS_DIR LINE
//   (test_vscode_code_server.py) NODE_MODULES holds playwright-core; URL is
//   code-server's; FOLDER the workspace, whose store holds one run of
//   demo/main; SHOTS_DIR gets a screenshot of each step; LINE is the line of
//   demo.flow to stop at.
// Environment: CHROME, the Chromium executable (default /usr/bin/chromium).
// Prints JSON: {"steps": [...], "error": null or a message}; exits 1 on failure.
'use strict';

const path = require('path');
const { openWorkbench, openFile, command, rows, paneRow, drive } = require('./code_server_kit');

const [modules, url, folder, shots, line] = process.argv.slice(2);

// The Call Stack's top frame, once it is the one wanted: its row's text.
async function topFrame(page, pattern) {
  const row = paneRow(page, 'Call Stack', pattern).first();
  await row.waitFor();
  return row.innerText();
}

// Small: the picture in the docs stays legible.
drive({ modules, viewport: { width: 1180, height: 720 }, shots }, async ({ page, step, snap }) => {
  await openWorkbench(page, url, folder);
  step('workbench');

  // demo.flow, with a breakpoint on LINE (Go to Line, then F9).
  await page.waitForTimeout(1500);
  await openFile(page, 'demo.flow');
  await page.locator('.codelens-decoration a', { hasText: 'Run' }).first().waitFor(); // the server is up
  await page.keyboard.press('Control+G');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type(String(line));
  await page.keyboard.press('Enter');
  await page.keyboard.press('F9');
  await page.locator('.monaco-editor .codicon-debug-breakpoint').first().waitFor();
  step('breakpoint', { lenses: await page.locator('.codelens-decoration a').allInnerTexts() });

  // The recorded run in the Runs view: its inline "Debug Run" action.
  await command(page, 'Flowmetal: Focus on Runs View');
  const run = paneRow(page, 'Runs', /^demo\/main\s*completed/).first();
  await run.waitFor();
  await run.hover();
  await snap('runs-view');
  await run.locator('.action-label[aria-label="Debug Run"]').click();

  // Stopped at the breakpoint: the editor's current line, the frame and the bindings.
  await page.locator('.debug-toolbar').waitFor();
  const here = await topFrame(page, /^demo\/helper/);
  await paneRow(page, 'Variables', 'twice').first().waitFor();
  await page.locator('.monaco-editor .debug-top-stack-frame-line').first().waitFor();
  await page.mouse.move(800, 640); // the Debug Console's empty part: nothing hovered in the picture
  await page.waitForTimeout(500);
  await snap('stopped');
  if (shots) await page.screenshot({ path: path.join(shots, 'debugging.png') });
  step('stopped', {
    frame: here,
    stack: await rows(page, 'Call Stack'),
    variables: await rows(page, 'Variables'),
    toolbar: await page.locator('.debug-toolbar .action-label').evaluateAll(
      (labels) => labels.map((label) => label.getAttribute('aria-label'))),
  });

  // Step Back, from the Debug toolbar: the frame's line goes back.
  await page.keyboard.press('Escape');
  await page.locator('.debug-toolbar .action-label[aria-label^="Step Back"]').click();
  const back = await topFrame(page, new RegExp(`^demo/helper[\\s\\S]*\\D${Number(line) - 1}:\\d+$`));
  await paneRow(page, 'Variables', 'twice').waitFor({ state: 'hidden' });
  await snap('stepped-back');
  step('stepBack', { frame: back, variables: await rows(page, 'Variables') });

  // The end of the session: Stop.
  await page.locator('.debug-toolbar .action-label[aria-label^="Stop"]').click();
  await page.locator('.debug-toolbar').waitFor({ state: 'hidden' });
  step('stopped-session');
});
