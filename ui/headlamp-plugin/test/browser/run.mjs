// Drives headless Chromium (the system's, no download) through the Kiln plugin in the host
// shell. Run by test/ui/ui_test.go, which serves the shell and proxies the API server; it
// prints "STEP <name>" lines the Go test acts on, and fails (exit 1) on the first check that
// does not hold. Screenshots go to $KILN_UI_ARTEFACTS.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const base = process.env.KILN_UI_URL;
const ns = process.env.KILN_UI_NAMESPACE || 'ml';
const out = process.env.KILN_UI_ARTEFACTS || tmpdir();
const kinds = (process.env.KILN_UI_KINDS || '').split(',').filter(Boolean);
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.KILN_UI_TIMEOUT_MS || 90000);
const job = 'llama-finetune';

if (!base) {
  console.error('KILN_UI_URL is not set: run this from test/ui (go test ./test/ui)');
  process.exit(2);
}

const step = name => console.log(`STEP ${name}`);
const profile = mkdtempSync(join(tmpdir(), 'kiln-ui-chromium-'));
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  userDataDir: profile,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

let failed = false;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  await page.setViewport({ width: 1400, height: 1000 });
  page.on('pageerror', e => console.error(`page error: ${e.message}`));
  page.on('console', m => {
    if (m.type() === 'error') {
      console.error(`console: ${m.text()}`);
    }
  });

  const url = path => `${base}/c/kiln/kiln/${path}`;
  const shot = name => page.screenshot({ path: join(out, name), fullPage: true });
  const waitText = (text, what) =>
    page
      .waitForFunction(t => document.body.innerText.includes(t), { timeout }, text)
      .catch(e => {
        throw new Error(`${what}: "${text}" never appeared (${e.message})`);
      });

  // The list is empty at first and says how to make a TrainingJob.
  await page.goto(url('trainingjobs'), { waitUntil: 'domcontentloaded' });
  await waitText('Kiln', 'the sidebar section');
  await page.waitForSelector('[data-testid="kiln-empty"]').catch(async e => {
    await shot('trainingjobs-empty-failed.png');
    throw new Error(`the empty TrainingJob list never showed its empty state: ${e.message}`);
  });
  await waitText('kubectl kiln train', 'the empty state');
  await shot('trainingjobs-empty.png');
  step('list-empty');

  // The Go test creates the TrainingJob now; the list must show it without a reload.
  await waitText(job, 'the TrainingJob created after the list opened (the list does not watch?)');
  await waitText('2x8', 'the shape column');
  await shot('trainingjobs-list.png');
  step('list-watched');

  // The detail page: shape and conditions with their messages.
  const href = await page.evaluate(
    name =>
      [...document.querySelectorAll('a')].find(a => a.textContent === name)?.getAttribute('href'),
    job
  );
  const wantHref = `/c/kiln/kiln/trainingjobs/${ns}/${job}`;
  if (href !== wantHref) {
    throw new Error(`the list's link to the TrainingJob: got ${href}, want ${wantHref}`);
  }
  await page.click(`a[href="${wantHref}"]`);
  await page.waitForSelector('[data-testid="kiln-shape"]');
  const shape = await page.$eval('[data-testid="kiln-shape"]', el => el.textContent);
  const want = '2 nodes × 8 processes per node, 16 GPUs (8 per node) in pool a100';
  if (shape !== want) {
    throw new Error(`detail page shape: got "${shape}", want "${want}"`);
  }
  await waitText('2 of 2 workers are ready', 'the Running condition message');
  await waitText('placed on 2 nodes of pool a100', 'the Admitted condition message');
  await waitText('loss=1.25', 'the latest metrics');
  await shot('trainingjob-detail.png');
  step('detail');

  // GPU pools: capacity from the test's Node objects (2×8 A100, 1×4 L4).
  await page.goto(url('cluster'), { waitUntil: 'domcontentloaded' });
  await waitText('0 of 20 GPUs in use on 3 nodes', 'the GPU pool totals');
  await shot('cluster.png');
  step('cluster');

  // The other kinds' lists, where their CRDs are installed.
  for (const k of kinds) {
    await page.goto(url(k), { waitUntil: 'domcontentloaded' });
    const name = { sweeps: 'lr-search', modelservers: 'resnet', notebooks: 'scratch' }[k];
    await waitText(name, `the ${k} list`);
    await shot(`${k}-list.png`);
    step(`list-${k}`);
  }

  // A ModelServer's detail: the traffic split asked for, before a controller reports one.
  if (kinds.includes('modelservers')) {
    await page.goto(url(`modelservers/${ns}/resnet`), { waitUntil: 'domcontentloaded' });
    await waitText('canary 10%', 'the ModelServer traffic bar');
    await waitText('Promote canary', 'the promote action');
    await shot('modelserver-detail.png');
    step('detail-modelservers');
  }

  // A kind whose CRD is absent shows the error state saying what to do.
  const absent = ['sweeps', 'modelservers', 'notebooks'].find(k => !kinds.includes(k));
  if (absent) {
    await page.goto(url(absent), { waitUntil: 'domcontentloaded' });
    await waitText('not installed in this cluster', `the ${absent} error state`);
    await shot(`${absent}-not-installed.png`);
    step(`error-${absent}`);
  }
  step('done');
} catch (e) {
  failed = true;
  console.error(`FAIL ${e.message}`);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
