-- docs/reference.md "Streams": TCP clients and servers on the loop, the read
-- formats, cancellation, closing, back-pressure and errors
local H = require "helper"
local async, await = H.async, H.await

-- a server on a free port whose connections run handler; its port
local function server(handler)
  local sv = await(async.serve(handler, "127.0.0.1", 0))
  local _, port = sv:sockname()
  return sv, port
end

describe("streams", function()
  it("talk both ways: lines, byte counts, everything, and lines()", function()
    async.run(function()
      local sv, port = server(function(s)
        for line in s:lines() do await(s:write("echo: ", line, "\n")) end
        await(s:write("bye"))
      end)
      local c = await(async.connect("127.0.0.1", port))
      local host, p = c:peername()
      assert.equal("127.0.0.1", host); assert.equal(port, p)
      await(c:write("one\ntwo\n"))
      assert.equal("echo: one", await(c:read("l")))
      assert.equal("echo: two\n", await(c:read("L")))
      await(c:write("three"))
      await(c:close_write())                        -- the server reads the end: its last line has no "\n"
      assert.equal("echo: three\nbye", await(c:read("a")))
      assert.is_nil(await(c:read("l")))
      assert.is_nil(await(c:read(10)))
      await(c:close())
      await(c:close())                               -- idempotent
      await(sv:close())
    end)
  end)

  it("read_exactly and read_until, with IncompleteReadError and LimitOverrunError", function()
    async.run(function()
      local sv, port = server(function(s)
        await(s:write("12345|rest-of-it"))
        await(s:close())
      end)
      local c = await(async.connect("127.0.0.1", port, { limit = 8 }))
      assert.equal("123", await(c:read_exactly(3)))
      assert.equal("45|", await(c:read_until("|")))
      local e = H.catch(await, c:read_until("#"))      -- not within the limit: the data stays
      assert.is_true(async.LimitOverrunError:is(e))
      assert.equal("rest", await(c:read(4)))
      e = H.catch(await, c:read_exactly(100))
      assert.is_true(async.IncompleteReadError:is(e))
      assert.equal("-of-it", e.partial)
      assert.equal(100, e.expected)
      await(c:close()); await(sv:close())
    end)
  end)

  it("a cancelled read loses no byte and clears its wait; two readers at once is InvalidStateError", function()
    async.run(function()
      local go = async.Event()
      local sv, port = server(function(s)
        await(s:write("ab"))
        await(go:wait())
        await(s:write("c\n"))
        await(async.sleep(0.2))
      end)
      local c = await(async.connect("127.0.0.1", port))
      assert.is_true(async.TimeoutError:is(H.catch(await, async.wait_for(c:read("l"), 0.05))))   -- "ab" arrived, no "\n"
      local reader = async.spawn(function() return await(c:read("l")) end)   -- may start at once
      await(async.sleep(0.01))
      assert.is_true(async.InvalidStateError:is(H.catch(await, c:read(1))))
      go:set()
      assert.equal("abc", await(reader))            -- nothing lost
      await(c:close()); await(sv:close())
    end)
  end)

  it("close wakes a blocked reader (end of stream) and writes after it fail with ConnectionError", function()
    async.run(function()
      local sv, port = server(function(s) await(async.sleep(1)) end)
      local c = await(async.connect("127.0.0.1", port))
      local reader = async.spawn(function() return await(c:read("l")) end)
      await(async.sleep(0.01))
      await(c:close())
      assert.is_nil(await(reader))
      assert.is_true(async.ConnectionError:is(H.catch(await, c:write("x"))))
      assert.is_true(async.InvalidStateError:is(H.catch(await, c:read(1))))
      await(sv:close())
    end)
  end)

  it("abort closes at once, unawaited; a handler that fails has its stream aborted", function()
    async.run(function()
      local ended = async.Event()
      local got
      local sv, port = server(function(s) got = await(s:read("a")); ended:set() end)
      local c = await(async.connect("127.0.0.1", port))
      c:abort()                                      -- a plain call: nothing to await
      assert.is_true(async.InvalidStateError:is(H.catch(await, c:read(1))))
      await(async.wait_for(ended:wait(), 5))
      assert.equal("", got)
      -- a handler that fails: its stream is aborted, the peer reads the end
      await(sv:close())
      async.set_exception_handler(function() end)   -- (its report is the spec below's)
      sv, port = server(function(s)
        await(s:write("partial"))
        error("handler failed", 0)
      end)
      c = await(async.connect("127.0.0.1", port))
      assert.equal("partial", await(c:read("a")))
      await(c:close()); await(sv:close())
      -- aborted, not flushed: what it had queued and not sent is dropped
      local big, failing = 64 << 20, async.Event()
      sv, port = server(function(s)
        async.spawn(function() await(s:write(("z"):rep(big))) end)   -- queued far beyond the socket buffers
        for _ = 1, 3 do await(async.sleep(0)) end
        failing:set()
        error("handler failed with bytes queued", 0)
      end)
      c = await(async.connect("127.0.0.1", port))
      await(failing:wait())
      local got = 0
      while true do
        local ok, d = pcall(await, c:read())
        if not ok or not d then break end                -- (the end, or a reset)
        got = got + #d
      end
      assert.is_true(got < big, ("the peer read %d of %d queued bytes"):format(got, big))
      await(c:close()); await(sv:close())
    end)
    async.set_exception_handler(nil)
  end)

  it("writing to a peer that closed is a ConnectionError, never a SIGPIPE death", function()
    async.run(function()
      local sv, port = server(function(s) s:abort() end)
      local c = await(async.connect("127.0.0.1", port))
      assert.is_nil(await(c:read(1)))                -- the peer is gone
      local e
      for _ = 1, 50 do                               -- the kernel takes a write or two first
        local ok, err = pcall(await, c:write(("x"):rep(65536)))
        if not ok then e = err; break end
        await(async.sleep(0.01))
      end
      assert.is_true(async.ConnectionError:is(e), tostring(e))
      await(c:close()); await(sv:close())
    end)
  end)

  it("a writer that outruns its peer waits in write (bounded memory), and goes on when the peer reads", function()
    async.run(function()
      local release = async.Event()
      local got = 0
      local sv, port = server(function(s)
        await(release:wait())
        while true do local d = await(s:read(65536)); if not d then break end got = got + #d end
      end)
      local c = await(async.connect("127.0.0.1", port))
      local written, chunk = 0, ("y"):rep(65536)
      local writer = async.spawn(function()
        for _ = 1, 200 do await(c:write(chunk)); written = written + #chunk end   -- 12.5 MiB
        await(c:close())
      end)
      await(async.sleep(0.3))
      assert.is_false(writer:done())                 -- held back: the peer reads nothing yet
      assert.is_true(written < 200 * 65536)
      release:set()
      await(writer)
      await(async.sleep(0.05))
      for _ = 1, 100 do if got == 200 * 65536 then break end await(async.sleep(0.02)) end
      assert.equal(200 * 65536, got)
      await(sv:close())
    end)
  end)

  it("a handler's error is reported and never stops the server", function()
    local reported
    async.run(function()
      async.set_exception_handler(function(ctx) reported = ctx.exception end)
      local n = 0
      local sv, port = server(function(s)
        n = n + 1
        if n == 1 then error("handler broke", 0) end
        await(s:write("ok\n"))
      end)
      local c1 = await(async.connect("127.0.0.1", port))
      assert.is_nil(await(c1:read("l")))             -- closed by the failed handler
      local c2 = await(async.connect("127.0.0.1", port))
      assert.equal("ok", await(c2:read("l")))
      await(c1:close()); await(c2:close())
      await(sv:close()); await(sv:wait_closed())
    end)
    async.set_exception_handler(nil)                 -- (the report comes as run ends, at the latest)
    assert.equal("handler broke", reported)
  end)

  it("accepted streams send at once (TCP_NODELAY, as asyncio): two small writes cost no delayed-ACK wait", function()
    async.run(function()
      local sv = await(async.serve(function(s)
        while await(s:read(1)) do await(s:write("a")); await(s:write("b")) end
      end, "127.0.0.1", 0))
      local _, port = sv:sockname()
      local c = await(async.connect("127.0.0.1", port))
      local took = H.elapsed(function()
        for _ = 1, 20 do await(c:write("q")); assert.equal("ab", await(c:read_exactly(2))) end
      end)
      -- with Nagle each "b" waits for the ACK of "a", which Linux delays
      -- by at least 40 ms (TCP_DELACK_MIN): 20 of them, 0.8 s or more
      assert.is_true(took < 0.4, ("20 exchanges took %.3f s"):format(took))
      await(c:close()); await(sv:close())
    end)
  end)

  it("opts.reuse_port lets several servers listen on one port; without it the port is taken", function()
    async.run(function()
      local a = await(async.serve(function(s) await(s:write("a")) end, "127.0.0.1", 0, { reuse_port = true }))
      local _, port = a:sockname()
      local b = await(async.serve(function(s) await(s:write("b")) end, "127.0.0.1", port, { reuse_port = true }))
      assert.equal(port, select(2, b:sockname()))
      local e = H.catch(await, async.serve(function() end, "127.0.0.1", port))
      assert.equal("EADDRINUSE", e.code)
      local seen = {}
      for _ = 1, 40 do                               -- the kernel spreads connections over both
        local c = await(async.connect("127.0.0.1", port))
        seen[await(c:read("a"))] = true
        await(c:close())
      end
      assert.is_true(seen.a and seen.b, "both servers took connections")
      await(a:close()); await(b:close())
    end)
  end)

  it("speaks IPv6: serve on ::1, connect by address, getaddrinfo by family", function()
    async.run(function()
      local sv = await(async.serve(function(s) await(s:write("six\n")) end, "::1", 0))
      local host, port = sv:sockname()
      assert.equal("::1", host)
      local c = await(async.connect("::1", port))
      assert.equal("six", await(c:read("l")))
      assert.equal("::1", (c:peername()))
      await(c:close())
      local found = await(async.getaddrinfo("::1", 80, { family = "inet6" }))
      assert.same({ family = "inet6", address = "::1", port = 80 }, found[1])
      await(sv:close())
      -- connect tries each address: "localhost" reaches a server on 127.0.0.1 alone
      sv = await(async.serve(function(s) await(s:write("four\n")) end, "127.0.0.1", 0))
      _, port = sv:sockname()
      c = await(async.connect("localhost", port))
      assert.equal("four", await(c:read("l")))
      await(c:close()); await(sv:close())
    end)
  end)

  it("a server out of file descriptors (EMFILE under ulimit -n) drops what it cannot take and goes on", function()
    local script = H.tmpfile() .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write([[
      package.cpath = "./?.so;" .. package.cpath
      local async = require "async"
      async.run(function()
        local sv = async.await(async.serve(function(s)
          for line in s:lines() do async.await(s:write(line, "\n")) end
        end, "127.0.0.1", 0))
        print((select(2, sv:sockname()))); io.stdout:flush()
        async.await(sv:serve_forever())
      end)
    ]])
    f:close()
    async.run(function()
      local p = await(async.process.exec({ "sh", "-c", "ulimit -n 40 && exec lua5.4 " .. script }, { stdout = "pipe" }))
      local port = tonumber(await(p.stdout:read("l")))
      local clients, served, dropped = {}, 0, 0
      for i = 1, 80 do clients[i] = await(async.connect("127.0.0.1", port)) end
      for _, c in ipairs(clients) do
        local ok, line = pcall(function()
          await(c:write("hi\n"))
          return await(async.wait_for(c:read("l"), 5))
        end)
        if ok and line == "hi" then served = served + 1 else dropped = dropped + 1 end
      end
      assert.is_true(served > 0 and dropped > 0, ("served %d, dropped %d"):format(served, dropped))
      for _, c in ipairs(clients) do await(c:close()) end
      local c                                        -- the descriptors are back: it serves again
      for _ = 1, 100 do
        c = await(async.connect("127.0.0.1", port))
        local ok, line = pcall(function()
          await(c:write("again\n"))
          return await(async.wait_for(c:read("l"), 5))
        end)
        await(c:close())
        if ok and line == "again" then c = true; break end
        await(async.sleep(0.02))
      end
      assert.is_true(c == true, "the server came back")
      p:kill()
      await(p:wait())
    end)
    os.remove(script)
  end)

  it("the stream methods check their arguments at the call, naming them; zero-byte reads give \"\"", function()
    async.run(function()
      local sv, port = server(function(s) await(s:write(await(s:read("a")))) end)
      local c = await(async.connect("127.0.0.1", port))
      local function raised(f, ...)
        local ok, e = pcall(f, c, ...)            -- (no await: the call itself raises)
        assert.is_false(ok)
        return e
      end
      assert.matches("bad argument #1 to 'read' %(a byte count must not be negative%)", raised(c.read, -1))
      assert.matches("bad argument #1 to 'read' %(a byte count, \"l\", \"L\" or \"a\" expected, got x%)", raised(c.read, "x"))
      assert.matches("bad argument #1 to 'read_exactly' %(a byte count expected, got 1.5%)", raised(c.read_exactly, 1.5))
      assert.matches("bad argument #1 to 'read_until' %(a non%-empty separator expected%)", raised(c.read_until, ""))
      assert.matches("bad argument #2 to 'write' %(string expected, got table%)", raised(c.write, "a", {}))
      assert.matches("bad argument #1 to 'write' %(string expected, got no value%)", raised(c.write))
      assert.equal("", await(c:read(0)))
      assert.equal("", await(c:read_exactly(0)))
      await(c:write("a", 1, 2.5, "\n"))             -- numbers join as Lua writes them
      await(c:drain())
      await(c:close_write())
      assert.equal("a12.5\n", await(c:read("*a")))   -- ("*a": Lua 5.1's spelling works too)
      await(c:close()); await(sv:close())
    end)
  end)

  it("system failures are OSError with the code; bad arguments name themselves", function()
    async.run(function()
      local sv, port = server(function() end)
      local e = H.catch(await, async.serve(function() end, "127.0.0.1", port))
      assert.is_true(async.OSError:is(e))
      assert.equal("EADDRINUSE", e.code)
      e = H.catch(await, async.connect("127.0.0.1", 1))
      assert.is_true(async.ConnectionError:is(e))
      assert.equal("ECONNREFUSED", e.code)
      e = H.catch(await, async.getaddrinfo("no-such-host.invalid"))
      assert.is_true(async.OSError:is(e))
      assert.matches("^EAI_", e.code)
      assert.matches("port must be an integer 0%-65535, got \"http\"", H.catch(async.connect, "127.0.0.1", "http"))
      assert.matches("unknown option limt", H.catch(async.connect, "127.0.0.1", 80, { limt = 1 }))
      assert.matches("bad argument #1 to 'serve' %(function expected", H.catch(async.serve, 1, "127.0.0.1", 0))
      local found = await(async.getaddrinfo("127.0.0.1", 80, { family = "inet" }))
      assert.same({ family = "inet", address = "127.0.0.1", port = 80 }, found[1])
      await(sv:close())
    end)
  end)

  it("talks to a peer nobody here wrote (Python's socket server)", function()
    local port, stop = H.server("/usr/bin/python3 -c 'import socket,os,sys\n"
      .. "s=socket.socket(); s.bind((\"127.0.0.1\",0)); s.listen()\n"
      .. "print(s.getsockname()[1], os.getpid(), flush=True)\n"
      .. "c,_=s.accept(); f=c.makefile(\"rb\"); line=f.readline(); c.sendall(line.upper()); c.close()'")
    async.run(function()
      local c = await(async.connect("127.0.0.1", port))
      await(c:write("from lua\n"))
      assert.equal("FROM LUA", await(c:read("l")))
      assert.is_nil(await(c:read("l")))
      await(c:close())
    end)
    stop()
  end)

  it("over Unix sockets: serve_unix and connect_unix, the same stream", function()
    local path = H.tmpfile()
    async.run(function()
      local sv = await(async.serve_unix(function(s)
        for line in s:lines() do await(s:write(line:upper(), "\n")) end
      end, path))
      assert.equal(path, sv:sockname())
      local c = await(async.connect_unix(path))
      await(c:write("over a unix socket\n"))
      assert.equal("OVER A UNIX SOCKET", await(c:read("l")))
      assert.equal(path, c:peername())
      await(c:close())
      local e = H.catch(await, async.serve_unix(function() end, path))   -- the path is taken
      assert.equal("EADDRINUSE", e.code)
      await(sv:close())
      e = H.catch(await, async.connect_unix(path .. ".none"))
      assert.is_true(async.OSError:is(e))
      assert.equal("ENOENT", e.code)
    end)
    os.remove(path)
  end)
end)
