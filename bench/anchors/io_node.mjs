// The I/O rows of make bench on Node: "exec N" (N sequential spawn("true")
// awaiting each exit) -> "exec <seconds>".
import { spawn } from "node:child_process";
const n = +(process.argv[3] ?? 1000);
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  await new Promise((done, fail) => {
    const p = spawn("true", { stdio: "ignore" });
    p.on("exit", (code) => (code === 0 ? done() : fail(new Error("exit " + code))));
    p.on("error", fail);
  });
}
console.log(`exec ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3)}`);
