// The chat page in a real browser (Debian's Chromium, headless, driven by puppeteer-core):
// it shows the model's name, sends a message and shows the streamed answer, which must be
// the server's own answer to that conversation.
// Usage: node browser.mjs BASE_URL EXPECTED_ANSWER_FILE
import puppeteer from 'puppeteer-core';
import { readFileSync } from 'node:fs';

const [base, expectedFile] = process.argv.slice(2);
const expected = readFileSync(expectedFile, 'utf8');
const fail = (m) => { console.error('FAIL: ' + m); process.exit(1); };
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  await page.goto(base + '/?temperature=0&max_tokens=40', { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('model').textContent !== '…',
                             { timeout: 20000 });
  const model = await page.$eval('#model', (e) => e.textContent);
  await page.type('#input', 'Once upon a time');
  await page.click('#send');
  await page.waitForSelector('.msg.assistant[data-done="true"], .msg.error', { timeout: 60000 });
  const err = await page.$('.msg.error');
  if (err) fail('the page shows an error: ' + await page.$eval('.msg.error', (e) => e.textContent));
  const answer = await page.$eval('.msg.assistant', (e) => e.textContent);
  const stats = await page.$eval('#stats', (e) => e.textContent);
  if (answer !== expected) fail(`page shows ${JSON.stringify(answer)}, server says ${JSON.stringify(expected)}`);
  if (!/tokens\/s/.test(stats)) fail('no tokens/s shown: ' + stats);
  console.log(`chat page: model ${model}, answer ${JSON.stringify(answer.slice(0, 40))}…, ${stats}`);
} finally {
  await browser.close();
}
