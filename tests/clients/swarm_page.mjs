// The swarm page (/swarm of `ggswarm server swarm://…`) in a real browser (Debian's
// Chromium, headless, driven by puppeteer-core): it draws every stage the swarm has, with
// its address over its layers, and the chains in use; a stage that is killed disappears
// from it within its refresh, its layers drawn as a gap.
// Usage: node swarm_page.mjs BASE_URL KILL_PID KILL_ADDRESS KILL_LAYERS ADDRESS…
import puppeteer from 'puppeteer-core';

const [base, killPid, killAddress, killLayers, ...addresses] = process.argv.slice(2);
const fail = (m) => { console.error('FAIL: ' + m); process.exit(1); };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
});
const shown = (page) => page.$$eval('.stage', (els) => els.map((e) => e.dataset.address));
try {
  const page = await browser.newPage();
  await page.goto(base + '/swarm?refresh=1', { waitUntil: 'load' });
  // Every stage, each once, and no gap while all serve.
  await page.waitForFunction((want) => {
    const got = [...document.querySelectorAll('.stage')].map((e) => e.dataset.address);
    return want.every((a) => got.includes(a));
  }, { timeout: 30000 }, addresses).catch(async () => fail(`stages shown: ${await shown(page)}, want ${addresses}`));
  const before = await shown(page);
  if (before.length !== addresses.length) fail(`${before.length} stages drawn for ${addresses.length}`);
  if (await page.$('.gap')) fail('a gap is drawn while every layer is served');
  const chains = await page.$eval('#chains', (e) => e.textContent);
  if (!chains.includes('lane 0') || !addresses.every((a) => chains.includes(a)))
    fail('the chains in use do not go through every stage: ' + chains);
  // The page's own refreshes from here on are counted: the stage must go within two.
  process.kill(Number(killPid), 'SIGKILL');
  const refreshed = Number(await page.$eval('body', (b) => b.dataset.refreshed));
  await page.waitForFunction((addr, since) => {
    const gone = ![...document.querySelectorAll('.stage')].some((e) => e.dataset.address === addr);
    return gone && Number(document.body.dataset.refreshed) <= since + 3;
  }, { timeout: 30000 }, killAddress, refreshed).catch(() => fail('the killed stage is still drawn'));
  const gaps = await page.$$eval('.gap', (els) => els.map((e) => e.dataset.gap));
  if (!gaps.includes(killLayers)) fail(`gaps drawn: ${gaps}, want ${killLayers}`);
  console.log(`swarm page: ${before.length} stages drawn, ${killAddress} gone after the kill, gap ${gaps}`);
} finally {
  await browser.close();
}
