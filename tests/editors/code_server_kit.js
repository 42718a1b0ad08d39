// The steps every driver of VS Code itself (code-server, in headless Chromium
// through playwright-core) takes, in one place: Chromium launched the same
// way, the workbench opened on a folder, a file opened with Quick Open, a
// command run from the palette, the rows of a view read, and a driver's steps
// reported as JSON. Used by vscode_code_server.js, vscode_code_server_debug.js
// and bench/vscode_start.js, so that a change in code-server's page (a class
// name, a start-up wait) is made once.
'use strict';

const path = require('path');
const fs = require('fs');
const os = require('os');
const Module = require('module');

// Chromium with a profile in PROFILE (a directory), as headless and quiet as a test wants it;
// playwright-core is taken from the node_modules directory MODULES. CHROME names the executable.
async function launch(modules, profile, viewport) {
  const { chromium } = Module.createRequire(path.join(path.resolve(modules), 'x.js'))('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROME || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    viewport,
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  return { context, page };
}

// code-server's page on FOLDER, once the workbench is drawn.
async function openWorkbench(page, url, folder) {
  await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`);
  await page.locator('.monaco-workbench').waitFor();
}

// Quick Open (Ctrl+P) with NAME typed, up to its row in the list: Enter opens it.
async function findFile(page, name) {
  await page.keyboard.press('Control+P');
  await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
  await page.keyboard.type(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
}

// The file NAME opened as a user opens it, once an editor shows lines (holding SHOWS, if given).
async function openFile(page, name, shows) {
  await findFile(page, name);
  await page.keyboard.press('Enter');
  await page.locator('.monaco-editor .view-lines', shows ? { hasText: shows } : {}).first().waitFor();
}

// A command run from the palette (F1), by its title.
async function command(page, name) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${name}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
  await page.keyboard.press('Enter');
}

// A view's pane, by its title.
function pane(page, title) {
  return page.locator('.pane', { has: page.locator('.pane-header', { hasText: title }) });
}

// The rows of a view's pane, as text.
async function rows(page, title) {
  return pane(page, title).locator('.monaco-list-row').allInnerTexts();
}

// The rows of a view's pane holding TEXT (a string or a regular expression).
function paneRow(page, title, text) {
  return pane(page, title).locator('.monaco-list-row', { hasText: text });
}

// Runs DRIVE({page, step, snap}) in Chromium with a fresh profile (removed afterwards), and prints
// {"steps": [...], "error": null or a message}: each step(name, data) with the seconds since the
// start, and the error that stopped the drive (the exit code is then 1). snap(name) keeps a
// numbered screenshot in SHOTS (if given); a failure's is taken too.
async function drive({ modules, viewport, shots }, body) {
  const steps = [];
  const started = Date.now();
  const step = (name, data = {}) => steps.push({ name, at: (Date.now() - started) / 1000, ...data });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flowmetal-chromium-'));
  const { context, page } = await launch(modules, profile, viewport);
  let shot = 0;
  const snap = async (name) => {
    if (shots) await page.screenshot({ path: path.join(shots, `${String(++shot).padStart(2, '0')}-${name}.png`) });
  };
  try {
    await body({ page, step, snap });
    process.stdout.write(JSON.stringify({ steps, error: null }));
  } catch (err) {
    await snap('failure').catch(() => {});
    process.stdout.write(JSON.stringify({ steps, error: String(err && err.stack ? err.stack : err) }));
    process.exitCode = 1;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

module.exports = { launch, openWorkbench, findFile, openFile, command, pane, rows, paneRow, drive };
