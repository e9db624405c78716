-- docs/reference.md "Files": async.fs on the thread pool, file objects with
-- the io formats, OSError with the system's code and the path
local H = require "helper"
local async, await = H.async, H.await

local function tmpdir()
  local d = H.tmpfile()
  assert(os.execute("mkdir -p " .. d))
  return d
end

describe("async.fs", function()
  it("writes, appends, reads, stats, lists, renames and removes, as the shell sees it", function()
    local d = tmpdir()
    async.run(function()
      local fs = async.fs
      await(fs.mkdir(d .. "/x/y/z", { parents = true }))
      await(fs.mkdir(d .. "/x/y/z", { parents = true }))          -- there already: fine
      await(fs.write_file(d .. "/x/f.txt", "a\0b\n", { sync = true }))
      await(fs.write_file(d .. "/x/f.txt", "more", { append = true }))
      assert.equal("a\0b\nmore", await(fs.read_file(d .. "/x/f.txt")))
      assert.equal("a\0b\nmore", H.slurp(d .. "/x/f.txt"))
      local st = await(fs.stat(d .. "/x/f.txt"))
      assert.same({ "file", 8, 420 }, { st.type, st.size, st.mode })
      assert.equal("directory", await(fs.stat(d .. "/x/y")).type)
      assert.is_nil(await(fs.stat(d .. "/none")))
      await(fs.write_file(d .. "/x/mode", "", { mode = 384 }))     -- 0600
      assert.equal(384, await(fs.stat(d .. "/x/mode")).mode)
      assert.same({ "f.txt", "mode", "y" }, await(fs.list(d .. "/x")))
      await(fs.rename(d .. "/x/f.txt", d .. "/x/g.txt"))
      assert.same({ "g.txt", "mode", "y" }, await(fs.list(d .. "/x")))
      await(fs.remove(d .. "/x/g.txt"))
      await(fs.remove(d .. "/x", { recursive = true }))
      assert.same({}, await(fs.list(d)))
    end)
    os.execute("rm -rf " .. d)
  end)

  it("fails with OSError carrying the system's code, errno and the path, and changes nothing", function()
    local d = tmpdir()
    async.run(function()
      local fs = async.fs
      local e = H.catch(await, fs.read_file(d .. "/missing"))
      assert.is_true(async.OSError:is(e))
      assert.equal("ENOENT", e.code)
      assert.is_true(e.errno > 0)
      assert.matches("open " .. d:gsub("%p", "%%%0") .. "/missing", e.message)
      await(fs.mkdir(d .. "/full"))
      await(fs.write_file(d .. "/full/keep", "k"))
      assert.equal("ENOTEMPTY", H.catch(await, fs.remove(d .. "/full")).code)
      assert.equal("k", H.slurp(d .. "/full/keep"))
      assert.equal("EEXIST", H.catch(await, fs.mkdir(d .. "/full")).code)
      assert.equal("ENOENT", H.catch(await, fs.rename(d .. "/nope", d .. "/x")).code)
      assert.is_true(async.Error:is(e))
      assert.is_true(async.OSError:is(async.ConnectionError("x")))   -- ConnectionError is an OSError
      -- bad arguments raise at the call, naming them
      assert.matches("bad argument #1 to 'read_file' %(a path", H.catch(fs.read_file, 42))
      assert.matches("bad argument #2 to 'write_file' %(string expected", H.catch(fs.write_file, d .. "/a", {}))
      assert.matches("unknown option apend", H.catch(fs.write_file, d .. "/a", "", { apend = true }))
      assert.matches("bad argument #2 to 'open' %(mode", H.catch(fs.open, d .. "/a", "x"))
    end)
    os.execute("rm -rf " .. d)
  end)

  it("file objects read in the io formats, write, seek, sync, and close with <close>", function()
    local d = tmpdir()
    local path = d .. "/lines.txt"
    local fh = io.open(path, "w"); fh:write("one\ntwo\nthree"); fh:close()
    async.run(function()
      local fs = async.fs
      do
        local f <close> = await(fs.open(path))
        assert.same({ "one", "tw" }, { await(f:read("l", 2)) })
        assert.equal("o\n", await(f:read("L")))
        local rest = {}
        for line in f:lines() do rest[#rest + 1] = line end
        assert.same({ "three" }, rest)
        assert.is_nil(await(f:read("l")))
        assert.equal("", await(f:read("a")))
        assert.equal(0, f:seek("set", 0))
        assert.equal("one\ntwo\nthree", await(f:read("a")))
      end
      local f = await(fs.open(d .. "/rw.txt", "w+"))
      await(f:write("hello ", 42, "\n"))
      await(f:sync())
      f:seek("set", 0)
      assert.equal("hello 42\n", await(f:read("a")))
      await(f:close())
      await(f:close())                               -- twice is fine
      assert.matches("the file is closed", H.catch(await, f:read()))
      local big = ("x"):rep(200000) .. "\nend"       -- more than one chunk
      await(fs.write_file(d .. "/big", big))
      local g <close> = await(fs.open(d .. "/big"))
      assert.equal(200000, #await(g:read("l")))
      assert.equal("end", await(g:read("l")))
    end)
    os.execute("rm -rf " .. d)
  end)

  it("keeps the loop going while the pool works, and is lazy", function()
    local d = tmpdir()
    async.run(function()
      local fs = async.fs
      local pending = fs.write_file(d .. "/lazy", "x")
      await(async.sleep(0.02))
      assert.is_nil(H.slurp(d .. "/lazy"))           -- made, not awaited: nothing written
      await(pending)
      assert.equal("x", H.slurp(d .. "/lazy"))
      local ticks, stop = 0, false
      local ticker = async.spawn(function() while not stop do await(async.sleep(0)); ticks = ticks + 1 end end)
      local writes = {}
      for i = 1, 50 do writes[i] = fs.write_file(d .. "/f" .. i, ("y"):rep(10000), { sync = true }) end
      await(async.gather(writes))
      stop = true
      await(ticker)
      assert.is_true(ticks > 0)
      assert.equal(51, #await(fs.list(d)))           -- lazy, and f1 .. f50
    end)
    os.execute("rm -rf " .. d)
  end)
end)
