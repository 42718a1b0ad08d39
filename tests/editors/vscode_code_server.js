// Drives VS Code itself (code-server, in headless Chromium through
// playwright-core) with the Flowmetal extension installed, on a workspace
// holding demo.flow: clicks the Run lens, answers the argument boxes (one
// wrongly: the server's message shows; Escape goes back to the first), waits
// for the run to finish in the Runs view, clicks an event and reads the State
// view, then follows the Trace lens; then runs fleet.flow, whose run has tasks,
// and opens one of its task lanes; filters the runs, steps through events with
// the keyboard; runs shop.flow's functions: a record unfolded in the State
// view, a run waiting on a timer, and a run that fails. Screenshots of the side
// bar (runs-view-tasks.png, state-record.png, failed-run.png) are kept for the
// README (docs/images/).
//
// Usage: node vscode_code_server.js NODE_MODULES URL FOLDER SHOTS_DIR (test_vscode_code_server.py)
//   NODE_MODULES holds playwright-core; URL is code-server's; FOLDER the
//   workspace; SHOTS_DIR gets a screenshot of each step (for failures).
// Environment: CHROME, the Chromium executable (default /usr/bin/chromium).
// Prints JSON: {"steps": [...], "error": null or a message}; exits 1 on failure.
'use strict';

const path = require('path');
const { openWorkbench, findFile, openFile, command, pane, rows, paneRow, drive } = require('./code_server_kit');

const [modules, url, folder, shots] = process.argv.slice(2);

// The editor lines with a whole-line decoration of the extension: [{line, background}].
async function marked(page) {
  return page.evaluate(() => {
    const editor = document.querySelector('.monaco-editor');
    const numbers = [...editor.querySelectorAll('.margin-view-overlays .line-numbers')]
      .map((el) => ({ line: Number(el.textContent), top: el.getBoundingClientRect().top }));
    return [...editor.querySelectorAll('.view-overlays > div > div')]
      .filter((el) => /\bced-/.test(el.className))
      .map((el) => {
        const top = el.getBoundingClientRect().top;
        const at = numbers.find((n) => Math.abs(n.top - top) < 3);
        return { line: at ? at.line : null, background: getComputedStyle(el).backgroundColor };
      });
  });
}

// Clicks `row` until `shown` is visible, three times at most. A row the view redraws at
// the instant of the click (a late update of its run redraws the run's rows) only takes
// the focus, as it would for a person, who clicks again; a click that does nothing
// three times still fails.
async function clickShowing(row, shown) {
  for (let attempt = 1; ; attempt++) {
    await row.click();
    try {
      await shown.waitFor({ timeout: attempt < 3 ? 10000 : 60000 });
      return;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

// The text colour of a row's label in a pane.
async function labelColour(row) {
  return row.locator('.label-name').first().evaluate((el) => getComputedStyle(el).color);
}

// A screenshot of the side bar, down to the last row of the State view.
async function sidebarShot(page, shots, name) {
  if (!shots) return;
  await page.mouse.move(700, 5); // no row hovered in the picture
  await page.waitForTimeout(300);
  const sidebar = await page.locator('.part.sidebar').boundingBox();
  const last = pane(page, 'State').locator('.monaco-list-row').last();
  const box = await last.boundingBox();
  const height = box ? Math.min(sidebar.height, box.y + box.height + 12 - sidebar.y) : sidebar.height;
  await page.screenshot({ path: path.join(shots, name), clip: { x: sidebar.x, y: sidebar.y, width: sidebar.width, height } });
}

drive({ modules, viewport: { width: 1500, height: 1100 }, shots }, async ({ page, step, snap }) => {
  await openWorkbench(page, url, folder);
  step('workbench');

  // Open demo.flow.
  await page.waitForTimeout(1500);
  await openFile(page, 'demo.flow');
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
  await clickShowing(paneRow(page, 'Runs', 'sleep!').first(), paneRow(page, 'State', 'twice = 6').first());
  await snap('state');
  const selected = await page.locator('.monaco-editor .selected-text').count();
  step('state', { rows: await rows(page, 'State'), selected, marked: await marked(page) });

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
  await findFile(page, 'fleet.flow');
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
  // The pointer away from the list: the lane's tooltip, once shown, covers the rows below it.
  await page.mouse.move(900, 900);
  // Its events, below it: down the list to its last (the list draws only the rows in sight).
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('ArrowDown');
    await page.waitForTimeout(100);
  }
  await paneRow(page, 'Runs', /^#29 task-completed/).first().waitFor();
  const rowsSeen = await rows(page, 'Runs');
  const laneSleep = paneRow(page, 'Runs', /^#25 sleep!/).first();
  await clickShowing(laneSleep,
    page.locator('.pane-header', { hasText: 'State' }).locator('.description', { hasText: 'task 3' }));
  await paneRow(page, 'State', 'fleet/reboot').first().waitFor();
  await snap('tasks');
  const sidebar = await page.locator('.part.sidebar').boundingBox();
  await sidebarShot(page, shots, 'runs-view-tasks.png'); // docs/images/vscode-runs-tasks.png
  step('tasks', {
    before: rowsBefore, rows: rowsSeen, sidebarWidth: sidebar ? sidebar.width : null,
    state: await page.locator('.pane-header', { hasText: 'State' }).locator('.description').innerText(),
  });

  // The keyboard: Alt+Down and Alt+Up step through the run's events, across its lanes.
  await laneSleep.click();
  await page.keyboard.press('Alt+ArrowDown');
  const stateDescription = page.locator('.pane-header', { hasText: 'State' }).locator('.description');
  await stateDescription.filter({ hasText: '#26 timer' }).waitFor();
  const afterDown = await stateDescription.innerText();
  await page.keyboard.press('Alt+ArrowDown');
  await stateDescription.filter({ hasText: '#29 task-completed' }).waitFor();
  await page.keyboard.press('Alt+ArrowUp');
  await stateDescription.filter({ hasText: '#26 timer' }).waitFor();
  const selectedRow = await pane(page, 'Runs').locator('.monaco-list-row.selected').innerText();
  step('keys', { afterDown, selected: selectedRow, after: await stateDescription.innerText() });

  // The filter: by status, entry and text, said in the view's header.
  await command(page, 'Flowmetal: Filter Runs');
  const filterBox = page.locator('.quick-input-widget input');
  await filterBox.waitFor({ state: 'visible' });
  await filterBox.fill('status:completed entry:demo/main ann');
  await page.keyboard.press('Enter');
  await runsHeader.locator('.description', { hasText: 'status:completed' }).waitFor();
  await page.waitForTimeout(300);
  const filtered = { header: await runsHeader.innerText(), rows: await rows(page, 'Runs') };
  await command(page, 'Flowmetal: Show All Runs');
  await runsHeader.locator('.description', { hasText: 'status:completed' }).waitFor({ state: 'hidden' });
  step('filter', filtered);

  // shop.flow: a record, unfolded in the State view. The run started before it folds.
  await openFile(page, 'shop.flow', '(defpackage');
  await page.locator('.codelens-decoration a', { hasText: /^▶ Run$/ }).first().click();
  await paneRow(page, 'Runs', /^shop\/place\s*completed/).first().waitFor();
  await paneRow(page, 'Runs', /^#\d+ log! "placing o-1"/).first().waitFor();
  const folded = await paneRow(page, 'Runs', /^task 3/).count();
  // Selected, the run shows its latest state: its value.
  await paneRow(page, 'State', 'value = 1250').first().waitFor();
  const order = paneRow(page, 'State', /^o = \(order/).first();
  await clickShowing(paneRow(page, 'Runs', /^#\d+ log! "placing o-1"/).first(), order);
  await order.click(); // unfolds it
  const lines = paneRow(page, 'State', /^lines = \[/).first();
  await lines.waitFor();
  await lines.click();
  const first = paneRow(page, 'State', /^\[0\] = \(item "sku-1" 1250\)/).first();
  await first.waitFor();
  await first.click();
  await paneRow(page, 'State', /^cents = 1250/).first().waitFor();
  await sidebarShot(page, shots, 'state-record.png');
  step('record', { state: await rows(page, 'State'), folded, runs: await rows(page, 'Runs') });

  // A run waiting on a timer: `waiting`, and its timer says when it is due.
  await page.locator('.codelens-decoration a', { hasText: /^▶ Run$/ }).nth(1).click();
  const napRow = paneRow(page, 'Runs', /^shop\/nap\s*waiting/).first();
  await napRow.waitFor();
  const timer = paneRow(page, 'Runs', /^#\d+ timer\s*due \d\d:\d\d:\d\d \(in /).first();
  await timer.waitFor();
  const waiting = { run: await napRow.innerText(), timer: await timer.innerText(),
    step: await paneRow(page, 'Runs', /^#\d+ sleep!/).first().innerText() };
  await paneRow(page, 'Runs', /^shop\/nap\s*completed/).first().waitFor();
  waiting.fired = await paneRow(page, 'Runs', /^#\d+ timer/).first().innerText();
  step('waiting', waiting);

  // A run that fails: red, announced; the notification's button shows the failing event.
  await page.locator('.codelens-decoration a', { hasText: 'Run…' }).first().click();
  const nBox = page.locator('.quick-input-widget input');
  await nBox.waitFor({ state: 'visible' });
  await nBox.fill('4');
  await page.keyboard.press('Enter');
  const failedToast = page.locator('.notification-toast', { hasText: 'shop/split failed' });
  await failedToast.waitFor();
  const toastText = await failedToast.locator('.notification-list-item-message').innerText();
  await failedToast.locator('.monaco-button', { hasText: 'Show Failing Event' }).click();
  const failedRow = paneRow(page, 'Runs', /^#\d+ run-failed/).first();
  await pane(page, 'Runs').locator('.monaco-list-row.selected', { hasText: 'run-failed' }).waitFor();
  await paneRow(page, 'State', /^error: .*division by zero/).first().waitFor();
  await page.waitForTimeout(500);
  const failedRun = paneRow(page, 'Runs', /^shop\/split\s*failed/).first();
  const colours = { event: await labelColour(failedRow), run: await labelColour(failedRun),
    fine: await labelColour(paneRow(page, 'Runs', /^shop\/place/).first()) };
  await sidebarShot(page, shots, 'failed-run.png');
  if (shots) await page.screenshot({ path: path.join(shots, 'failed-run-window.png') });
  step('failed', { toast: toastText, colours, marked: await marked(page), state: await rows(page, 'State') });
});
