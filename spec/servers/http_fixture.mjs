// A small HTTP server for the async.http specs: prints "PORT PID" on its
// first line, then serves until killed.
//   /echo            {method, path, headers, body} as JSON
//   /status/N        an empty answer with status N
//   /chunked         three chunks, 50 ms apart (Transfer-Encoding: chunked)
//   /large?bytes=N   N bytes of a repeating pattern
//   /redirect        302 to /echo
//   /stall           never answers
//   /drop            closes the connection without an answer
//   /garbage         200 with a body that is not JSON
//   /headers         repeated and mixed-case headers
//   /port            the client's source port (shows connection reuse)
//   /stalled         how many /stall requests still hold their connection
//   /loop            302 to itself, forever
//   /endless         a body that never ends (chunked, 64 KiB at a time)
//   /trickle         one byte a second, forever
//   /reset           a TCP reset instead of an answer
import http from "node:http";

const stalled = new Set();
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("latin1");
    const p = url.pathname;
    if (p === "/echo") {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ method: req.method, path: req.url, headers: req.headers, body }));
    } else if (p.startsWith("/status/")) {
      res.statusCode = +p.slice(8);
      res.end();
    } else if (p === "/chunked") {
      res.write("one,");
      setTimeout(() => res.write("two,"), 50);
      setTimeout(() => res.end("three"), 100);
    } else if (p === "/large") {
      const n = +(url.searchParams.get("bytes") || 0);
      const unit = Buffer.from("0123456789abcdef");
      const buf = Buffer.alloc(n);
      for (let i = 0; i < n; i += 16) unit.copy(buf, i, 0, Math.min(16, n - i));
      res.end(buf);
    } else if (p === "/redirect") {
      res.statusCode = 302;
      res.setHeader("location", "/echo");
      res.end("moved");
    } else if (p === "/stall") {
      stalled.add(req.socket);             // never answers
      req.socket.on("close", () => stalled.delete(req.socket));
    } else if (p === "/stalled") {
      res.end(String(stalled.size));
    } else if (p === "/drop") {
      req.socket.destroy();
    } else if (p === "/garbage") {
      res.setHeader("content-type", "application/json");
      res.end('{"ids": [1, 2');
    } else if (p === "/headers") {
      res.setHeader("X-Custom-Thing", "Value");
      res.setHeader("Set-Cookie", ["a=1", "b=2"]);
      res.end("ok");
    } else if (p === "/loop") {
      res.statusCode = 302;
      res.setHeader("location", "/loop");
      res.end();
    } else if (p === "/endless") {
      const block = Buffer.alloc(65536, 120);
      const pump = () => { while (res.write(block)) {} };
      res.on("drain", pump);
      req.socket.on("close", () => res.off("drain", pump));
      pump();
    } else if (p === "/trickle") {
      res.write("x");
      const t = setInterval(() => res.write("x"), 1000);
      req.socket.on("close", () => clearInterval(t));
    } else if (p === "/reset") {
      req.socket.resetAndDestroy();
    } else if (p === "/port") {
      res.end(String(req.socket.remotePort));
    } else {
      res.statusCode = 404;
      res.end("no such route");
    }
  });
});
server.keepAliveTimeout = 30000;
const watch = +(process.env.WATCH_PID || 0);   // stop with the test process
if (watch) setInterval(() => { try { process.kill(watch, 0); } catch { process.exit(0); } }, 1000).unref();
server.listen(0, "127.0.0.1", () => {
  console.log(`${server.address().port} ${process.pid}`);
});
