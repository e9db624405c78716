-- docs/reference.md "HTTP", against a local server of the tests' own
local H = require "helper"
local async, await = H.async, H.await
local http, json = async.http, async.json

describe("async.http", function()
  local port, stop, base
  setup(function()
    port, stop = H.server("node spec/servers/http_fixture.mjs")
    base = "http://127.0.0.1:" .. port
  end)
  teardown(function() stop() end)

  it("gets a response with status, lower-case headers and body", function()
    local r = H.run(async.fn(function()
      return await(http.get(base .. "/echo", { headers = { ["X-Token"] = "abc" } }))
    end))
    assert.equal(200, r.status)
    assert.equal("application/json", r.headers["content-type"])
    local echo = r:json()
    assert.equal("GET", echo.method)
    assert.equal("abc", echo.headers["x-token"])
  end)

  it("posts a body and uses any method with request{}", function()
    local a, b, raw = H.run(async.fn(function()
      local a = await(http.post(base .. "/echo", "hello \0 world", { headers = { ["content-type"] = "text/plain" } }))
      local b = await(http.request { method = "PUT", url = base .. "/echo", body = "x" })
      return a:json(), b:json(), a.body
    end))
    assert.equal("POST", a.method)
    assert.equal("hello \0 world", a.body)   -- a \u0000 decodes to a NUL byte
    assert.matches("hello \\u0000 world", raw, 1, true)
    assert.equal("text/plain", a.headers["content-type"])
    assert.equal("PUT", b.method)
    assert.equal("x", b.body)
  end)

  it("treats 4xx and 5xx as responses, not errors", function()
    local s4, s5 = H.run(async.fn(function()
      return await(http.get(base .. "/status/404")).status, await(http.get(base .. "/status/503")).status
    end))
    assert.equal(404, s4)
    assert.equal(503, s5)
  end)

  it("reads chunked responses and large bodies whole", function()
    local chunked, large = H.run(async.fn(function()
      return await(http.get(base .. "/chunked")).body, await(http.get(base .. "/large?bytes=20000000")).body
    end))
    assert.equal("one,two,three", chunked)
    assert.equal(20000000, #large)
    assert.equal("0123456789abcdef", large:sub(-16))
  end)

  it("does not follow redirects unless asked", function()
    local r, f = H.run(async.fn(function()
      return await(http.get(base .. "/redirect")), await(http.get(base .. "/redirect", { follow_redirects = true }))
    end))
    assert.equal(302, r.status)
    assert.equal("/echo", r.headers.location)
    assert.equal(200, f.status)
    assert.equal("GET", f:json().method)
  end)

  it("joins repeated headers", function()
    local r = H.run(async.fn(function() return await(http.get(base .. "/headers")) end))
    assert.equal("Value", r.headers["x-custom-thing"])
    assert.equal("a=1, b=2", r.headers["set-cookie"])
  end)

  it("keeps connections alive and reuses them", function()
    local p1, p2, p3 = H.run(async.fn(function()
      return await(http.get(base .. "/port")).body, await(http.get(base .. "/port")).body,
             await(http.get(base .. "/port")).body
    end))
    assert.equal(p1, p2)
    assert.equal(p2, p3)
  end)

  it("runs many requests at once on one loop", function()
    local bodies = H.run(async.fn(function()
      local reqs = {}
      for i = 1, 100 do reqs[i] = http.post(base .. "/echo", tostring(i)) end
      local out = {}
      for i, r in ipairs(await(async.gather(reqs))) do out[i] = r:json().body end
      return out
    end))
    for i = 1, 100 do assert.equal(tostring(i), bodies[i]) end
  end)

  it("raises ConnectionError when it cannot connect or the connection drops", function()
    local e1, e2 = H.run(async.fn(function()
      local _, e1 = pcall(await, http.get("http://127.0.0.1:1/"))
      local _, e2 = pcall(await, http.get(base .. "/drop"))
      return e1, e2
    end))
    assert.is_true(async.ConnectionError:is(e1))
    assert.matches("connect", e1.message)
    assert.is_true(async.ConnectionError:is(e2))
    assert.matches("/drop", e2.message)
  end)

  it("raises TimeoutError past opts.timeout, and the loop goes on", function()
    local e, after = H.run(async.fn(function()
      local t0 = async.time()
      local _, e = pcall(await, http.get(base .. "/stall", { timeout = 0.2 }))
      assert(async.time() - t0 >= 0.2)                -- not before (the server never answers)
      return e, await(http.get(base .. "/status/204")).status
    end))
    assert.is_true(async.TimeoutError:is(e))
    assert.equal(204, after)
  end)

  it("aborts the transfer when the awaiting task is cancelled, and frees the connection", function()
    local e, ok_after = H.run(async.fn(function()
      local t = async.create_task(async.fn(function() return await(http.get(base .. "/stall")) end)())
      await(async.sleep(0.05))
      t:cancel()
      local _, e = pcall(await, t)
      -- wait_for cancels too
      local _, e2 = pcall(await, async.wait_for(http.get(base .. "/stall"), 0.05))
      assert(async.TimeoutError:is(e2))
      return e, await(http.get(base .. "/status/200")).status
    end))
    assert.is_true(async.CancelledError:is(e))
    assert.equal(200, ok_after)
  end)

  it("closes the connection of a cancelled transfer at once (the server sees it go)", function()
    local during, after = H.run(async.fn(function()
      local t = async.spawn(function() return await(http.get(base .. "/stall")) end)
      await(async.sleep(0.1))
      local during = tonumber(await(http.get(base .. "/stalled")).body)
      t:cancel()
      await(async.sleep(0.1))
      return during, tonumber(await(http.get(base .. "/stalled")).body)
    end))
    assert.equal(1, during)
    assert.equal(0, after)
  end)

  it("an idle kept-alive connection keeps no loop alive: a run waiting on nothing is a deadlock", function()
    H.run(async.fn(function() await(http.get(base .. "/status/204")) end))
    local ok, e = pcall(async.run, function() await(async.Future()) end)
    assert.is_false(ok)
    assert.matches("deadlock", tostring(e))
  end)

  it("garbage JSON raises from resp:json()", function()
    local r = H.run(async.fn(function() return await(http.get(base .. "/garbage")) end))
    assert.equal(200, r.status)
    assert.has_error(function() r:json() end)
  end)

  it("checks its arguments, and a refused call raises at await like every other error", function()
    local errs = H.run(async.fn(function()
      local out = {}
      local function e(aw) local ok, err = pcall(await, aw); assert(not ok, "expected an error"); out[#out + 1] = err end
      e(http.request("x"))
      e(http.get(42))
      e(http.get("not a url"))
      e(http.get("file:///etc/hostname"))
      e(http.get("dict://127.0.0.1:1/x"))
      e(http.request { url = base .. "/echo", method = "get" })
      e(http.request { url = base .. "/echo", timeout = -1 })
      e(http.request { url = base .. "/echo", timeout = 0 / 0 })
      e(http.request { url = base .. "/echo", timeout = math.huge })
      e(http.request { url = base .. "/echo", headers = { [1] = "x" } })
      e(http.get(base .. "/echo", { headers = { ["X-A"] = "v\r\nX-Injected: yes" } }))
      e(http.get(base .. "/echo", { headers = { ["X-A\r\nX-B"] = "v" } }))
      e(http.get(base .. "/echo", { headers = { ["X-A"] = "v\0w" } }))
      e(http.get(base .. "/echo", { headers = { ["X-A: b"] = "v" } }))
      e(http.get(base .. "/echo", { timeuot = 3 }))
      e(http.get(base .. "/echo", { insecure = "no" }))
      e(http.get(base .. "/echo", { follow_redirects = "yes" }))
      e(http.get(base .. "/echo", { max_body = 0 }))
      return out
    end))
    local expect = { "takes an options table", "url must be an http", "url must be an http", "url must be an http",
                     "url must be an http", "method must be", "timeout must be", "timeout must be", "timeout must be",
                     "headers must map", "holds CR, LF or NUL", "is not a token", "holds CR, LF or NUL", "is not a token",
                     "unknown option timeuot", "insecure must be a boolean", "follow_redirects must be",
                     "max_body must be" }
    assert.equal(#expect, #errs)
    for i, pat in ipairs(expect) do assert.matches(pat, tostring(errs[i]), 1, true) end
  end)

  it("a refused call is an awaitable like any other: create_task and gather take it", function()
    local ok, err = H.run(async.fn(function()
      local t = async.create_task(http.get("nope"))
      return pcall(await, t)
    end))
    assert.is_false(ok)
    assert.matches("url must be", tostring(err))
  end)

  it("a tiny timeout is still a timeout", function()
    local e = H.run(async.fn(function()
      local _, err = pcall(await, http.get(base .. "/stall", { timeout = 0.0001 }))
      return err
    end))
    assert.is_true(async.TimeoutError:is(e), tostring(e))
  end)

  it("caps the body at max_body (default 256 MiB): an endless body is a ConnectionError saying so", function()
    local e, small = H.run(async.fn(function()
      local _, err = pcall(await, http.get(base .. "/endless", { max_body = 1 << 20 }))
      local _, err2 = pcall(await, http.get(base .. "/large?bytes=5000", { max_body = 4096 }))
      return err, err2
    end))
    assert.is_true(async.ConnectionError:is(e), tostring(e))
    assert.matches("larger than max_body", e.message)
    assert.is_true(async.ConnectionError:is(small))
    assert.matches("larger than max_body", small.message)
  end)

  it("follows at most follow_redirects redirects (10 with true), and only to http and https", function()
    local e1, e2, ok = H.run(async.fn(function()
      local _, a = pcall(await, http.get(base .. "/loop", { follow_redirects = true }))
      local _, b = pcall(await, http.get(base .. "/loop", { follow_redirects = 3 }))
      return a, b, await(http.get(base .. "/redirect", { follow_redirects = 1 }))
    end))
    assert.is_true(async.ConnectionError:is(e1))
    assert.matches("more redirects than follow_redirects allows", e1.message)
    assert.matches("more redirects", e2.message)
    assert.equal(200, ok.status)
  end)

  it("a connection reset says so", function()
    local e = H.run(async.fn(function() return select(2, pcall(await, http.get(base .. "/reset"))) end))
    assert.is_true(async.ConnectionError:is(e))
    assert.not_matches("select/poll", e.message)
    assert.matches("reset", e.message)
  end)

  it("resp:json() on garbage names resp:json(), not the library's files", function()
    local r = H.run(async.fn(function() return await(http.get(base .. "/garbage")) end))
    local ok, e = pcall(r.json, r)
    assert.is_false(ok)
    assert.matches("resp:json%(%): invalid JSON", e)
    assert.not_matches("http%.lua", e)
  end)
end)

describe("async.http over TLS", function()
  local base, stop, dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost" ..
                      " -keyout " .. dir .. "/key.pem -out " .. dir .. "/cert.pem 2>/dev/null"), "openssl is needed")
    local port
    port, stop = H.server("node spec/servers/https_fixture.mjs " .. dir .. "/cert.pem " .. dir .. "/key.pem")
    base = "https://127.0.0.1:" .. port
  end)
  teardown(function() stop(); os.execute("rm -rf " .. dir) end)

  it("verifies certificates by default, and skips that only when told", function()
    local e, r = H.run(async.fn(function()
      local _, e = pcall(await, http.get(base .. "/"))
      return e, await(http.get(base .. "/", { insecure = true }))
    end))
    assert.is_true(async.ConnectionError:is(e))
    assert.matches("certificate", e.message)
    assert.equal(200, r.status)
    assert.equal("secure", r.body)
  end)
end)
