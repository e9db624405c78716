// A fault-injecting HTTP proxy for the Chroma specs.  Usage:
//   node fault_proxy.mjs UPSTREAM_PORT
// prints "PORT PID CONTROL_PORT".  Requests to PORT go to 127.0.0.1:UPSTREAM_PORT
// unless a fault is set, through the control port:
//   GET /mode/<m>[?after=N]   from now (or after N more forwarded requests) on:
//        pass | stall (never answer) | error500 | error500once (one 500, then pass)
//        | garbage (truncated JSON)
//        | drop (close without an answer) | down (close every connection and
//        refuse new ones, as a killed server does)
//   GET /log                  [[client port, method, path, x-chroma-token], ...] of requests seen
import http from "node:http";

const upstream = +process.argv[2];
const agent = new http.Agent({ keepAlive: true });
let mode = "pass", next = null, after = 0, listening = true;
const seen = [], sockets = new Set();

// done() runs once the mode holds (a restarted listener is listening)
function setMode(m, done = () => {}) {
  mode = m;
  if (m === "down" && listening) {
    listening = false;
    server.close();
    for (const s of sockets) s.destroy();
  } else if (m !== "down" && !listening) {
    listening = true;
    server.listen(port, "127.0.0.1", done);
    return;
  }
  done();
}

const server = http.createServer((req, res) => {
  seen.push([req.socket.remotePort, req.method, req.url, req.headers["x-chroma-token"] || ""]);
  if (next !== null && after-- <= 0) { setMode(next); next = null; }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (mode === "stall") return;
    if (mode === "drop" || mode === "down") { req.socket.destroy(); return; }
    if (mode === "error500" || mode === "error500once") {
      if (mode === "error500once") mode = "pass";
      res.writeHead(500, { "content-type": "application/json" });
      res.end('{"error":"InternalError","message":"injected failure"}');
      return;
    }
    if (mode === "garbage") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ids":[["a","b"],');
      return;
    }
    const up = http.request({ host: "127.0.0.1", port: upstream, method: req.method, path: req.url,
                              headers: req.headers, agent }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on("error", () => req.socket.destroy());
    up.end(Buffer.concat(chunks));
  });
});
server.on("connection", (s) => { sockets.add(s); s.on("close", () => sockets.delete(s)); });
server.keepAliveTimeout = 30000;

const control = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const m = /^\/mode\/(\w+)$/.exec(url.pathname);
  if (m) {
    if (url.searchParams.has("after")) { next = m[1]; after = +url.searchParams.get("after"); res.end("ok"); }
    else { next = null; setMode(m[1], () => res.end("ok")); }
  } else if (url.pathname === "/log") {
    res.end(JSON.stringify(seen));
  } else { res.statusCode = 404; res.end(); }
});

let port;
server.listen(0, "127.0.0.1", () => {
  port = server.address().port;
  control.listen(0, "127.0.0.1", () => console.log(`${port} ${process.pid} ${control.address().port}`));
});
const watch = +(process.env.WATCH_PID || 0);   // stop with the test process
if (watch) setInterval(() => { try { process.kill(watch, 0); } catch { process.exit(0); } }, 1000).unref();
