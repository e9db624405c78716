# W5 on asyncio streams: CLIENTS client tasks x TRIPS round trips x SIZE bytes
# against an echo server in the same process.  Prints "W5 <seconds>".
import asyncio, sys, time

CLIENTS, TRIPS, SIZE = (int(a) for a in (sys.argv[1:] + ["100", "1000", "64"][len(sys.argv) - 1:])[:3])

async def echo(r, w):
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()

async def client(port, msg):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(TRIPS):
        w.write(msg)
        await w.drain()
        assert len(await r.readexactly(SIZE)) == SIZE
    w.close()
    await w.wait_closed()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t0 = time.perf_counter()
    msg = b"x" * SIZE
    await asyncio.gather(*(client(port, msg) for _ in range(CLIENTS)))
    print(f"W5 {time.perf_counter() - t0:.3f}")
    server.close()

asyncio.run(main())
