// Headless Chromium end-to-end check of the Wardline clinician app as two clinicians see it:
// each opens a mock EHR patient chart whose iframe starts the SMART launch, allows the consent
// page, and lands in the patient's room with the patient banner. A sends an urgent message, B
// receives it live over the WebSocket and acknowledges it, A sees the acknowledgement; then A
// sends a second message from the keyboard (Shift+Enter for a new line, Enter to send), a
// message the DLP check warns about (confirmed in the dialog), and an attachment B can download.
//
// Environment:
//   E2E_CHART_URL_A, E2E_CHART_URL_B  mock EHR chart page per clinician (contains
//                                     <iframe id="app-frame" title="Wardline">)
//   E2E_EXPECT_BANNER                 text the patient banner must contain (e.g. the MRN)
//   E2E_MESSAGE                       text of the message A sends
//   E2E_ARTIFACTS                     directory for screenshots (created)
//   CHROMIUM                          browser binary (default /usr/bin/chromium)
//   E2E_STEP_TIMEOUT_MS               per-step timeout (default 15000)
// Prints one JSON summary line on stdout; exits 1 with the failing step on stderr.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const STEP_MS = Number(process.env.E2E_STEP_TIMEOUT_MS || 15000);
const started = Date.now();
const steps = [];
let current = 'reading the environment';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set`);
  return v;
}

/** Runs one named step, recording its duration; a failure names the step. */
async function step(name, fn) {
  current = name;
  const t = Date.now();
  const out = await fn();
  steps.push({ step: name, ms: Date.now() - t });
  return out;
}

/** Waits until fn() is truthy (polling), or fails with `what`. */
async function until(what, fn, timeout = STEP_MS) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn().catch(() => false);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let browser = null;
const pages = {};
const problems = []; // uncaught errors and CSP violations in either page
const consoleErrors = [];

function watch(page, side) {
  page.on('pageerror', (e) => problems.push(`${side}: uncaught ${e.name}: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/Content Security Policy/i.test(text)) problems.push(`${side}: CSP violation: ${text}`);
    else consoleErrors.push(`${side}: ${text}`);
  });
}

async function main() {
  const chart = { a: need('E2E_CHART_URL_A'), b: need('E2E_CHART_URL_B') };
  const expectBanner = need('E2E_EXPECT_BANNER');
  const message = need('E2E_MESSAGE');
  const artifacts = need('E2E_ARTIFACTS');
  fs.mkdirSync(artifacts, { recursive: true });
  const shot = (side, name) => pages[side].screenshot({ path: path.join(artifacts, name), fullPage: true });

  browser = await step('launching Chromium', () => chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
  }));
  const app = {};
  for (const side of ['a', 'b']) {
    // Two contexts: two separate browser sessions (cookies, storage), one per clinician.
    const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    context.setDefaultTimeout(STEP_MS);
    context.setDefaultNavigationTimeout(STEP_MS);
    pages[side] = await context.newPage();
    watch(pages[side], side.toUpperCase());
    app[side] = pages[side].frameLocator('#app-frame');
  }

  const launch = async (side) => {
    const S = side.toUpperCase();
    await step(`${S}: opening the chart`, () => pages[side].goto(chart[side], { waitUntil: 'domcontentloaded' }));
    await step(`${S}: allowing on the consent page`, () => app[side].getByRole('button', { name: 'Allow' }).click());
    const banner = app[side].locator('[data-testid=patient-banner]');
    await step(`${S}: patient banner visible`, () => banner.waitFor({ state: 'visible' }));
    await step(`${S}: banner shows "${expectBanner}"`, () => until(
      `the banner to contain "${expectBanner}"`,
      async () => (await banner.innerText()).includes(expectBanner),
    ));
    await step(`${S}: live connection`, () => app[side].locator('#connection[data-state=live]').waitFor());
    await step(`${S}: screenshot`, () => shot(side, `${side}-launched.png`));
  };
  await launch('a');
  await launch('b');

  // Marks B's app window: if B reloads, the mark is gone, so the message must arrive live.
  await app.b.locator('body').evaluate(() => { window.wardlineE2eMark = true; });

  // Messages with this text from earlier runs against the same server do not count.
  const matching = (side, text) => app[side].locator('[data-testid=message]', { hasText: text });
  const earlier = { a: await matching('a', message).count(), b: await matching('b', message).count() };
  await step('A: choosing priority Urgent', () => app.a.getByLabel('Priority', { exact: true }).selectOption({ label: 'Urgent' }));
  await step('A: typing the message', () => app.a.getByLabel('Message', { exact: true }).fill(message));
  await step('A: clicking Send', () => app.a.getByRole('button', { name: 'Send', exact: true }).click());
  const inA = matching('a', message).nth(earlier.a);
  await step('A: own message shown', () => inA.waitFor());

  const inB = matching('b', message).nth(earlier.b);
  await step('B: message arrives live', () => inB.waitFor());
  await step('B: message arrived without a reload', () => until(
    'the app in B to keep its window (no reload)',
    () => app.b.locator('body').evaluate(() => window.wardlineE2eMark === true),
  ));
  await step('B: message is marked Urgent', () => until(
    'the priority badge to read Urgent',
    async () => /urgent/i.test(await inB.locator('[data-testid=priority]').innerText()),
  ));
  await step('B: screenshot', () => shot('b', 'b-received.png'));
  await step('B: clicking Acknowledge', () => inB.getByRole('button', { name: 'Acknowledge' }).click());
  await step('B: acknowledgement recorded', () => inB.getByText(/Acknowledged by/).waitFor());
  await step('A: sees the acknowledgement', () => inA.getByText(/Acknowledged by/).waitFor());
  await step('A: screenshot', () => shot('a', 'a-acknowledged.png'));

  // A letters-only marker: a long digit run (a timestamp) can pass the Luhn check and
  // rightly trigger the DLP card-number warning.
  const marker = Math.random().toString(36).replace(/[^a-z]/g, '').slice(0, 8);
  const second = `${message} (keyboard ${marker})`;
  const composer = app.a.getByLabel('Message', { exact: true });
  await step('A: typing a two-line message', async () => {
    await composer.focus();
    await pages.a.keyboard.type(second);
    await pages.a.keyboard.press('Shift+Enter');
    await pages.a.keyboard.type('second line');
  });
  await step('A: Shift+Enter kept the text in the composer', () => until(
    'a new line in the composer',
    async () => (await composer.inputValue()) === `${second}\nsecond line`,
  ));
  await step('A: pressing Enter sends', () => pages.a.keyboard.press('Enter'));
  await step('A: composer emptied', () => until('the composer to be empty', async () => (await composer.inputValue()) === ''));
  const secondInB = matching('b', second).last();
  await step('B: keyboard message arrives with both lines', () => until(
    'the second message with its second line',
    async () => /second line/.test(await secondInB.locator('[data-testid=message-body]').innerText()),
  ));

  // DLP: an SSN-like text is held back with a warning; "Send anyway" sends it.
  const dlpText = `Billing asks for SSN 123-45-6789 (${marker})`;
  await step('A: typing a message the DLP check warns about', () => composer.fill(dlpText));
  await step('A: clicking Send', () => app.a.getByRole('button', { name: 'Send', exact: true }).click());
  await step('A: DLP warning shown', () => app.a.locator('dialog[open]').waitFor());
  await step('A: screenshot', () => shot('a', 'a-dlp-warning.png'));
  await step('A: sending anyway', () => app.a.getByRole('button', { name: 'Send anyway' }).click());
  await step('B: the confirmed message arrives', () => matching('b', dlpText).last().waitFor());

  // Attachments: uploaded, sent with a message, offered to B as a download.
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
  await step('A: attaching a file', () => app.a.getByLabel('Attach file').setInputFiles({ name: 'ecg-strip.png', mimeType: 'image/png', buffer: png }));
  await step('A: sending it', async () => {
    await composer.fill(`ECG strip (${marker})`);
    await app.a.getByRole('button', { name: 'Send', exact: true }).click();
  });
  await step('B: sees the attachment link', () => app.b.getByRole('link', { name: /ecg-strip\.png/ }).last().waitFor());
  await step('B: screenshot', () => shot('b', 'b-attachment.png'));

  if (problems.length) {
    current = 'checking for script errors and CSP violations';
    throw new Error(problems.join('\n'));
  }
}

let ok = false;
let failure = null;
const watchdog = setTimeout(() => {
  process.stderr.write(`e2e: FAILED: gave up after 180 s (step: ${current})\n`);
  process.exit(1);
}, 180000);
try {
  await main();
  ok = true;
} catch (e) {
  failure = { step: current, error: String((e && e.message) || e).split('\n').slice(0, 12).join('\n') };
  const dir = process.env.E2E_ARTIFACTS;
  for (const side of ['a', 'b']) {
    if (!dir || !pages[side]) continue;
    await pages[side].screenshot({ path: path.join(dir, `failure-${side}.png`), fullPage: true }).catch(() => {});
  }
  process.stderr.write(`e2e: FAILED at step "${failure.step}": ${failure.error}\n`);
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
process.stdout.write(`${JSON.stringify({
  ok,
  failure,
  steps: steps.length,
  duration_ms: Date.now() - started,
  console_errors: consoleErrors.slice(0, 20),
  step_ms: Object.fromEntries(steps.map((s) => [s.step, s.ms])),
})}\n`);
process.exit(ok ? 0 : 1);
