-- docs/reference.md "Processes": async.process.exec and shell, pipes as
-- streams, wait, communicate, kill, and every child reaped
local H = require "helper"
local async, await = H.async, H.await

describe("async.process", function()
  it("runs a program, its output read as a stream, its exit code awaited", function()
    async.run(function()
      local p = await(async.process.exec({ "echo", "hello", "world" }, { stdout = "pipe" }))
      assert.is_true(p.pid > 0)
      assert.is_nil(p.stdin)
      assert.equal("hello world\n", await(p.stdout:read("a")))
      assert.same({ 0, nil }, { await(p:wait()) })
      assert.same({ 0, nil }, { await(p:wait()) })   -- again, once it is over
      local q = await(async.process.shell("exit 7"))
      assert.equal(7, await(q:wait()))
    end)
  end)

  it("communicate writes stdin and reads stdout and stderr at once: 8 MiB each way, no pipe deadlock", function()
    async.run(function()
      local p = await(async.process.shell("cat; head -c 8388608 /dev/zero >&2; exit 3",
                                          { stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
      local input = ("z"):rep(8388608)
      local out, err, code, sig = await(p:communicate(input))
      assert.equal(8388608, #out)
      assert.is_true(out == input)
      assert.equal(8388608, #err)
      assert.equal(3, code)
      assert.is_nil(sig)
    end)
  end)

  it("stderr = \"stdout\" merges the two into one pipe, in the order written", function()
    async.run(function()
      local p = await(async.process.shell("echo out; echo err >&2; echo out2",
                                          { stdout = "pipe", stderr = "stdout" }))
      assert.is_nil(p.stderr)
      local out, err, code = await(p:communicate())
      assert.equal("out\nerr\nout2\n", out)
      assert.is_nil(err)
      assert.equal(0, code)
    end)
  end)

  it("env, cwd and null stdio", function()
    local dir = H.tmpfile()
    os.execute("mkdir -p " .. dir)
    async.run(function()
      local p = await(async.process.shell("echo $GREETING; pwd; echo gone >&2",
                                          { env = { GREETING = "hi", PATH = os.getenv("PATH") }, cwd = dir,
                                            stdout = "pipe", stderr = "null" }))
      local out = await(p.stdout:read("a"))
      assert.equal("hi\n" .. dir .. "\n", out)
      assert.equal(0, await(p:wait()))
    end)
    os.execute("rm -rf " .. dir)
  end)

  it("kill sends a signal; wait gives nil and the signal's name; cancelling wait leaves the child", function()
    async.run(function()
      local p = await(async.process.exec({ "sleep", "30" }))
      assert.is_true(async.TimeoutError:is(H.catch(await, async.wait_for(p:wait(), 0.05))))
      assert.is_true(p:kill("SIGKILL"))
      assert.same({ nil, "SIGKILL" }, { await(p:wait()) })
      assert.is_false(p:kill())                       -- already over
      local q = await(async.process.exec({ "sleep", "30" }))
      assert.is_true(q:kill())                        -- SIGTERM
      assert.same({ nil, "SIGTERM" }, { await(q:wait()) })
      assert.matches("a signal name", H.catch(q.kill, q, "SIGNOPE"))
    end)
  end)

  it("a program that cannot start is an OSError with the system's code", function()
    async.run(function()
      local e = H.catch(await, async.process.exec({ "no-such-program-anywhere" }))
      assert.is_true(async.OSError:is(e))
      assert.equal("ENOENT", e.code)
      local f = H.tmpfile()
      local fh = io.open(f, "w"); fh:write("#!/bin/sh\n"); fh:close()   -- not executable
      e = H.catch(await, async.process.exec({ f }))
      assert.equal("EACCES", e.code)
      os.remove(f)
      assert.matches("a list: the program", H.catch(async.process.exec, "ls"))
      assert.matches("stdout must be \"pipe\"", H.catch(async.process.exec, { "ls" }, { stdout = "file" }))
      assert.matches("unknown option stdot", H.catch(async.process.exec, { "ls" }, { stdot = "pipe" }))
    end)
  end)

  it("reaps every child, also those nobody waits for: no zombie is left", function()
    local pid = tonumber(io.open("/proc/self/stat"):read("a"):match("^(%d+)"))
    async.run(function()
      for _ = 1, 10 do await(async.process.exec({ "true" })) end   -- never waited for
      await(async.sleep(0.3))
    end)
    local p = io.popen("env -u LD_PRELOAD ps -o stat= --ppid " .. pid .. " 2>/dev/null")   -- (ps hangs under the sanitizer runtime)
    local states = p:read("a")
    p:close()
    assert.not_matches("Z", states)
  end)
end)
