// OpenAI's own npm client (v6) against `ggswarm server`: a whole and a streamed chat
// completion, greedy, must give the same text; a completion gives llama.cpp's greedy text.
// Usage: node openai_client.mjs BASE_URL GOLDEN_JSON
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const [base, goldenPath] = process.argv.slice(2);
const golden = JSON.parse(readFileSync(goldenPath, 'utf8'));
const client = new OpenAI({ baseURL: base + '/v1', apiKey: 'test-key' });
const fail = (m) => { console.error('FAIL: ' + m); process.exit(1); };

const models = await client.models.list();
const model = models.data[0].id;

// A text completion: llama.cpp's greedy continuation of the golden prompt.
const c = await client.completions.create({
  model, prompt: golden.prompt, max_tokens: golden.generated_tokens.length, temperature: 0,
  ignore_eos: true,
});
if (c.choices[0].text !== golden.generated_text)
  fail(`completion text ${JSON.stringify(c.choices[0].text)} != llama.cpp's ${JSON.stringify(golden.generated_text)}`);
if (c.usage.completion_tokens !== golden.generated_tokens.length) fail('usage.completion_tokens');

// Chat, whole and streamed.
const messages = [{ role: 'user', content: golden.prompt }];
const whole = await client.chat.completions.create({ model, messages, max_tokens: 40, temperature: 0 });
const text = whole.choices[0].message.content;
if (!text) fail('empty chat answer');
if (!['stop', 'length'].includes(whole.choices[0].finish_reason)) fail('finish_reason');
const stream = await client.chat.completions.create({
  model, messages, max_tokens: 40, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let streamed = '', usage = null, chunks = 0;
for await (const chunk of stream) {
  ++chunks;
  if (chunk.choices.length && chunk.choices[0].delta.content) streamed += chunk.choices[0].delta.content;
  if (chunk.usage) usage = chunk.usage;
}
if (streamed !== text) fail(`streamed ${JSON.stringify(streamed)} != whole ${JSON.stringify(text)}`);
if (!usage || usage.completion_tokens !== whole.usage.completion_tokens) fail('stream usage');
if (chunks < 3) fail('the answer came in fewer than 3 chunks');

// An error the SDK raises as an APIError with the server's message.
try {
  await client.chat.completions.create({ model, messages: [], max_tokens: 4 });
  fail('empty messages were accepted');
} catch (e) {
  if (!(e instanceof OpenAI.APIError) || e.status !== 400 || !/messages/.test(e.message))
    fail('empty messages: ' + e);
}
console.log(`openai ${OpenAI.VERSION ?? ''}: completion = llama.cpp's greedy text; chat ${JSON.stringify(text.slice(0, 40))}… whole = stream (${chunks} chunks)`);
