# The four runtime workloads on Python asyncio.  Prints "W<n> <seconds>".
import asyncio, sys, time

N = int(sys.argv[2]) if len(sys.argv) > 2 else 100000

async def trivial(i):
    return i

async def w1():
    r = await asyncio.gather(*[trivial(i) for i in range(N)])
    assert r[-1] == N - 1

async def sleeper():
    await asyncio.sleep(0.01)

async def w2():
    await asyncio.gather(*[sleeper() for _ in range(N)])

async def w3():
    sem = asyncio.Semaphore(100)
    async def worker():
        async with sem:
            await asyncio.sleep(0)
    await asyncio.gather(*[worker() for _ in range(N)])

async def w4():
    R = 2 * N
    ping, pong = asyncio.Queue(), asyncio.Queue()
    async def echo():
        for _ in range(R):
            pong.put_nowait(await ping.get())
    t = asyncio.create_task(echo())
    for i in range(R):
        ping.put_nowait(i)
        await pong.get()
    await t

which = sys.argv[1] if len(sys.argv) > 1 else "all"
for name, w in (("W1", w1), ("W2", w2), ("W3", w3), ("W4", w4)):
    if which in ("all", name):
        t0 = time.perf_counter()
        asyncio.run(w())
        print(name, "%.3f" % (time.perf_counter() - t0))
