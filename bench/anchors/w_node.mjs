// The four runtime workloads on Node (V8 promises).  Prints "W<n> <seconds>".
const which = process.argv[2] || "all";
const N = Number(process.argv[3] || 100000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const yieldOnce = () => new Promise((r) => setImmediate(r));

// FIFO with a moving head: Array.shift() is O(n) on large arrays
class Fifo {
  constructor() { this.a = []; this.h = 0; }
  push(x) { this.a.push(x); }
  shift() { if (this.h >= this.a.length) return undefined; const x = this.a[this.h]; this.a[this.h++] = undefined; if (this.h > 4096 && this.h * 2 > this.a.length) { this.a = this.a.slice(this.h); this.h = 0; } return x; }
  get length() { return this.a.length - this.h; }
}

class Semaphore {
  constructor(n) { this.n = n; this.waiters = new Fifo(); }
  async acquire() {
    if (this.n > 0 && this.waiters.length === 0) { this.n--; return; }
    await new Promise((r) => this.waiters.push(r));
  }
  release() { const w = this.waiters.shift(); if (w) w(); else this.n++; }
}

class Queue {
  constructor() { this.items = new Fifo(); this.getters = new Fifo(); }
  putNowait(x) { const g = this.getters.shift(); if (g) g(x); else this.items.push(x); }
  get() { return this.items.length ? Promise.resolve(this.items.shift()) : new Promise((r) => this.getters.push(r)); }
}

const W = {
  async W1() {
    const trivial = async (i) => i;
    const ps = []; for (let i = 0; i < N; i++) ps.push(trivial(i));
    const r = await Promise.all(ps); if (r[N - 1] !== N - 1) throw new Error("bad");
  },
  async W2() {
    const ps = []; for (let i = 0; i < N; i++) ps.push((async () => { await sleep(10); })());
    await Promise.all(ps);
  },
  async W3() {
    const sem = new Semaphore(100);
    const worker = async () => { await sem.acquire(); try { await yieldOnce(); } finally { sem.release(); } };
    const ps = []; for (let i = 0; i < N; i++) ps.push(worker());
    await Promise.all(ps);
  },
  async W4() {
    const R = 2 * N, ping = new Queue(), pong = new Queue();
    const echo = (async () => { for (let i = 0; i < R; i++) pong.putNowait(await ping.get()); })();
    for (let i = 0; i < R; i++) { ping.putNowait(i); await pong.get(); }
    await echo;
  },
};

for (const name of ["W1", "W2", "W3", "W4"]) {
  if (which === "all" || which === name) {
    const t0 = process.hrtime.bigint();
    await W[name]();
    console.log(name, (Number(process.hrtime.bigint() - t0) / 1e9).toFixed(3));
  }
}
