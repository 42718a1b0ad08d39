// Drives VS Code itself (code-server, in headless Chromium through
// playwright-core) with the Flowmetal extension installed, on a workspace
// holding demo.flow: clicks the Run lens, answers the argument boxes (one
// wrongly: the server's message shows; Escape goes back to the first), waits
// for the run to finish in the Runs view, clicks an event and reads the State
// view, then follows the Trace lens; then runs fleet.flow, whose run has tasks,
// and opens one of its task lanes.
//
// Usage: node vscode_code_server.js NODE_MODULES URL FOLDER SHOTS_DIR (test_vscode_code_server.py)
//   NODE_MODULES holds playwright-core; URL is code-server's; FOLDER the
//   workspace; SHOTS_DIR gets a screenshot of each step (for failures).
// Environment: CHROME, the Chromium executable (default /usr/bin/chromium).
// Prints JSON: {"steps": [...], "error": null or a message}; exits 1 on failure.
'use strict';

const path = require('path');
const fs = require('fs');
const os = require('os');
const Module = require('module');

const [modules, url, folder, shots] = process.argv.slice(2);
const { chromium } = Module.createRequire(path.join(path.resolve(modules), 'x.js'))('playwright-core');

const steps = [];
const started = Date.now();
const step = (name, data = {}) => steps.push({ name, at: (Date.now() - started) / 1000, ...data });

// The rows of a view pane (by its title), as text.
async function rows(page, title) {
  const pane = page.locator('.pane', { has: page.locator('.pane-header', { hasText: title }) });
  return pane.locator('.monaco-list-row').allInnerTexts();
}

function paneRow(page, title, text) {
  const pane = page.locator('.pane', { has: page.locator('.pane-header', { hasText: title }) });
  return pane.locator('.monaco-list-row', { hasText: text });
}

async function command(page, name) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`>${name}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
  await page.keyboard.press('Enter');
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flowmetal-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROME || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    viewport: { width: 1500, height: 1100 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(60000);
  let shot = 0;
  const snap = async (name) => {
    if (shots) await page.screenshot({ path: path.join(shots, `${String(++shot).padStart(2, '0')}-${name}.png`) });
  };
  try {
    await page.goto(`${url}/?folder=${encodeURIComponent(folder)}`);
    await page.locator('.monaco-workbench').waitFor();
    step('workbench');

    // Open demo.flow.
    await page.waitForTimeout(1500);
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
    await page.keyboard.type('demo.flow');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'demo.flow' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-editor .view-lines').first().waitFor();
    step('editor');

    // The Run lens of `main` (the second function of the file): its arguments, one box each.
    const runLens = page.locator('.codelens-decoration a', { hasText: 'Run…' }).nth(1);
    await runLens.waitFor();
    await snap('lenses');
    step('lenses', { lenses: await page.locator('.codelens-decoration a').allInnerTexts() });
    await runLens.click();
    const input = page.locator('.quick-input-widget input');
    const boxTitle = page.locator('.quick-input-widget .quick-input-title');
    const message = page.locator('.quick-input-widget .quick-input-message');
    const box = async () => ({
      title: await boxTitle.innerText().catch(() => ''),
      prompt: await message.innerText().catch(() => ''),
      value: await input.inputValue().catch(() => ''),
    });
    const boxes = [];
    await input.waitFor({ state: 'visible' });
    await boxTitle.filter({ hasText: '(1/2)' }).waitFor();
    boxes.push(await box());
    await input.fill('"ann"');
    await page.keyboard.press('Enter');
    await boxTitle.filter({ hasText: '(2/2)' }).waitFor();
    boxes.push(await box());
    // A wrong argument: the server's message, as it is typed.
    await input.fill('"three"');
    await message.filter({ hasText: 'must be int?' }).waitFor();
    const wrong = await message.innerText();
    await snap('argument-checked');
    // Escape: back to the first, its answer kept; then on again.
    await page.keyboard.press('Escape');
    await boxTitle.filter({ hasText: '(1/2)' }).waitFor();
    const back = await box();
    await page.keyboard.press('Enter');
    await boxTitle.filter({ hasText: '(2/2)' }).waitFor();
    await input.fill('3');
    await message.filter({ hasText: 'must be' }).waitFor({ state: 'hidden' });
    await page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden' });
    step('arguments', { boxes, wrong, back });

    // The run, selected in the Runs view, then completed live.
    const run = paneRow(page, 'Runs', 'demo/main');
    await run.first().waitFor();
    await snap('run-started');
    await paneRow(page, 'Runs', 'run-completed').first().waitFor();
    // The run's own row (not the run-completed event's) says completed: its status comes
    // after its events.
    await paneRow(page, 'Runs', /^demo\/main\s*completed/).first().waitFor();
    await snap('run-completed');
    step('runs', { rows: await rows(page, 'Runs') });

    // An event: its source selected, the state there.
    await paneRow(page, 'Runs', 'sleep!').first().click();
    await paneRow(page, 'State', 'twice : int? = 6').first().waitFor();
    await snap('state');
    const selected = await page.locator('.monaco-editor .selected-text').count();
    step('state', { rows: await rows(page, 'State'), selected });

    // Replay, from the run's inline button.
    const runRow = paneRow(page, 'Runs', 'demo/main').first();
    await runRow.hover();
    await runRow.locator('.action-label[aria-label="Replay Run"]').click();
    const toast = page.locator('.notification-toast', { hasText: 'reproduces' });
    await toast.waitFor();
    step('replay', { message: await toast.locator('.notification-list-item-message').innerText() });

    // The Trace lens of `main`: the Runs view on its runs.
    // Its count follows the runs: the server asks VS Code for the lenses again.
    const traceLens = page.locator('.codelens-decoration a', { hasText: 'Trace (' }).nth(1);
    await traceLens.filter({ hasText: 'Trace (1 run)' }).waitFor();
    const title = await traceLens.innerText();
    await traceLens.click();
    const header = page.locator('.pane-header', { hasText: 'Runs' });
    await header.locator('.description', { hasText: 'demo/main' }).waitFor();
    await snap('trace-lens');
    step('traceLens', { lens: title, header: await header.innerText(), rows: await rows(page, 'Runs') });

    // Show All Runs clears it.
    await command(page, 'Flowmetal: Show All Runs');
    await header.locator('.description', { hasText: 'demo/main' }).waitFor({ state: 'hidden' });
    step('showAll');

    // A run with tasks (fleet.flow): its own events, then a lane per task. Task 3
    // opened, then a screenshot of the side bar at its default width.
    const runsHeader = page.locator('.pane-header', { hasText: 'Runs' });
    await runsHeader.hover();
    await runsHeader.locator('.action-label[aria-label="Collapse All"]').click();
    await page.keyboard.press('Control+P');
    await page.locator('.quick-input-widget input').waitFor({ state: 'visible' });
    await page.keyboard.type('fleet.flow');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'fleet.flow' }).first().waitFor();
    await page.keyboard.press('Enter');
    const fleetLens = page.locator('.codelens-decoration a', { hasText: /^▶ Run$/ }).first();
    await fleetLens.waitFor();
    await fleetLens.click();
    await paneRow(page, 'Runs', /^fleet\/reboot-all\s*completed/).first().waitFor();
    const lane = paneRow(page, 'Runs', /^task 3/).first();
    await lane.waitFor();
    const rowsBefore = await rows(page, 'Runs');
    await lane.scrollIntoViewIfNeeded();
    await lane.click();
    // Its events, below it: down the list to its last (the list draws only the rows in sight).
    for (let i = 0; i < 8; i++) {
      await page.keyboard.press('ArrowDown');
      await page.waitForTimeout(100);
    }
    await paneRow(page, 'Runs', /^#29 task-completed/).first().waitFor();
    const rowsSeen = await rows(page, 'Runs');
    const laneSleep = paneRow(page, 'Runs', /^#25 step-requested/).first();
    await laneSleep.click();
    await page.locator('.pane-header', { hasText: 'State' }).locator('.description', { hasText: 'task 3' }).waitFor();
    await paneRow(page, 'State', 'fleet/reboot').first().waitFor();
    await page.mouse.move(700, 5); // no row hovered in the picture
    await page.waitForTimeout(300);
    await snap('tasks');
    const sidebar = await page.locator('.part.sidebar').boundingBox();
    if (shots) {
      // The side bar down to the State view's last row (docs/images/vscode-runs-tasks.png is one).
      const last = await paneRow(page, 'State', 'ms : int?').first().boundingBox();
      const height = Math.min(sidebar.height, last.y + last.height + 12 - sidebar.y);
      await page.screenshot({ path: path.join(shots, 'runs-view-tasks.png'),
        clip: { x: sidebar.x, y: sidebar.y, width: sidebar.width, height } });
    }
    step('tasks', {
      before: rowsBefore, rows: rowsSeen, sidebarWidth: sidebar ? sidebar.width : null,
      state: await page.locator('.pane-header', { hasText: 'State' }).locator('.description').innerText(),
    });
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

main();
