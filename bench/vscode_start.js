// Opens a workspace in VS Code (code-server, in headless Chromium through
// playwright-core), opens a .flow file holding an error and waits for the
// error's squiggle and for the Problems count in the status bar: the times
// (epoch milliseconds, this machine's clock, which the extension host shares)
// at which the page was asked for, the workbench was drawn, Enter was pressed
// in Quick Open, the file's text was shown, the squiggle appeared and the
// status bar counted the error.
//
// Usage: node vscode_start.js NODE_MODULES URL FOLDER FILE PROFILE [PAUSE] (bench_vscode_start.py)
//   PROFILE: Chromium's profile directory, kept (with its cache) for the next run;
//   PAUSE: seconds to wait once the workbench is drawn before opening the file (default 0).
// Environment: CHROME, the Chromium executable (default /usr/bin/chromium).
// Prints JSON: {"page": ms, "workbench": ms, "open": ms, "opened": ms, "squiggle": ms, "problems": ms}.
'use strict';

const { launch, openWorkbench, findFile } = require('../tests/editors/code_server_kit');

const [modules, url, folder, file, profile, pause = '0'] = process.argv.slice(2);

async function main() {
  const { context, page } = await launch(modules, profile, { width: 1400, height: 900 });
  const times = {};
  try {
    times.page = Date.now();
    await openWorkbench(page, url, folder);
    times.workbench = Date.now();
    await page.waitForTimeout(Number(pause) * 1000);
    // Quick Open, as a user opens a file.
    await findFile(page, file);
    times.open = Date.now();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-lines', { hasText: '(defpackage' }).first().waitFor();
    times.opened = Date.now();
    // Both watched at once, each stamped when it shows.
    const squiggle = page.locator('.monaco-editor .squiggly-error').first().waitFor({ state: 'attached' })
      .then(() => { times.squiggle = Date.now(); });
    const problems = page.waitForFunction(() => {
      const item = document.getElementById('status.problems');
      return item && /Errors: [1-9]/.test(item.getAttribute('aria-label') || '');
    }, null, { polling: 'raf' }).then(() => { times.problems = Date.now(); });
    await Promise.all([squiggle, problems]);
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(times));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
