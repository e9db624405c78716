// W5, TCP echo on Node: CLIENTS clients x TRIPS round trips x SIZE bytes against
// an echo server in the same process.  Prints "W5 <seconds>".
import net from "node:net";
const CLIENTS = +(process.argv[2] ?? 100), TRIPS = +(process.argv[3] ?? 1000), SIZE = +(process.argv[4] ?? 64);
const msg = Buffer.alloc(SIZE, "x");
const server = net.createServer((s) => s.on("data", (d) => s.write(d)));
server.listen(0, "127.0.0.1", async () => {
  const port = server.address().port;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CLIENTS }, () => new Promise((done) => {
    const c = net.connect(port, "127.0.0.1");
    c.setNoDelay(true);
    let left = TRIPS, got = 0;
    c.on("connect", () => c.write(msg));
    c.on("data", (d) => {
      got += d.length;
      while (got >= SIZE) { got -= SIZE; if (--left === 0) { c.end(); return done(); } c.write(msg); }
    });
  })));
  console.log(`W5 ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)}`);
  server.close();
});
