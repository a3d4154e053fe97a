// A TCP proxy that holds every chunk DELAY_MS before passing it on, both ways: a link with
// 2 × DELAY_MS of round trip, for benchmarks on a kernel without tc netem.
// Usage: node delay_proxy.mjs LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS
// Prints "listening on 127.0.0.1:PORT" when ready (LISTEN_PORT 0: any free port).
import net from 'node:net';

const [listenPort, target, delayMs] = process.argv.slice(2);
const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
const delay = Number(delayMs);

// Chunks leave in order: each waits for its own time and for the one before it.
function pipeDelayed(from, to) {
  let last = Promise.resolve();
  from.on('data', (chunk) => {
    const due = Date.now() + delay;
    last = last.then(() => new Promise((r) => setTimeout(r, Math.max(0, due - Date.now()))))
      .then(() => { if (!to.destroyed) to.write(chunk); });
  });
  from.on('end', () => { last.then(() => to.end()); });
  from.on('error', () => to.destroy());
}

const server = net.createServer((client) => {
  client.setNoDelay(true);
  const upstream = net.connect({ host, port }, () => upstream.setNoDelay(true));
  pipeDelayed(client, upstream);
  pipeDelayed(upstream, client);
  upstream.on('close', () => client.destroy());
  client.on('close', () => upstream.destroy());
});
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
