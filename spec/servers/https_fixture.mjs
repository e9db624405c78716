// An HTTPS server with the self-signed certificate and key given, for the
// async.http TLS specs: prints "PORT PID", answers every request with "secure".
//   node https_fixture.mjs CERT KEY
import https from "node:https";
import fs from "node:fs";

const server = https.createServer({ cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3]) },
  (req, res) => res.end("secure"));
server.listen(0, "127.0.0.1", () => console.log(`${server.address().port} ${process.pid}`));
const watch = +(process.env.WATCH_PID || 0);   // stop with the test process
if (watch) setInterval(() => { try { process.kill(watch, 0); } catch { process.exit(0); } }, 1000).unref();
