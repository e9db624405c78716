-- docs/reference.md "TLS": TLS clients and servers over OpenSSL, verified
-- by default; peers nobody here wrote (Python's ssl, openssl s_server and
-- s_client); handshake failures as ConnectionError saying why
local H = require "helper"
local async, await = H.async, H.await
-- (the peers run without the sanitizer runtime the suite may preload)

-- a TLS server of ours with the CA-signed certificate; its port
local function tls_server(handler, opts)
  local c = H.certs()
  opts = opts or {}
  opts.tls = { cert_file = c.cert, key_file = c.key }
  local sv = await(async.serve(handler, "127.0.0.1", 0, opts))
  local _, port = sv:sockname()
  return sv, port
end

local function upper_echo(s)
  for line in s:lines("L") do await(s:write(line:upper())) end
end

-- a plain TCP server (no TLS) whose connections run handler
local function plain_server(handler)
  local sv = await(async.serve(handler, "127.0.0.1", 0))
  local _, port = sv:sockname()
  return sv, port
end

describe("TLS", function()
  it("talks to Python's ssl server: the certificate verified against ca_file, SNI sent for a name", function()
    local c = H.certs()
    local port, stop = H.server("/usr/bin/python3 spec/servers/tls_peer.py server " .. c.cert .. " " .. c.key)
    async.run(function()
      local s = await(async.connect("localhost", port, { tls = { ca_file = c.ca } }))
      await(s:write("hello over tls\n"))
      assert.equal("sni=localhost HELLO OVER TLS", await(s:read("l")))
      await(s:close())
      -- by address: checked against the certificate's IP entry, and no SNI (names only)
      s = await(async.connect("127.0.0.1", port, { tls = { ca_file = c.ca } }))
      await(s:write("by address\n"))
      assert.equal("sni=None BY ADDRESS", await(s:read("l")))
      await(s:close())
      -- servername: what to check and to send, whatever was dialled
      s = await(async.connect("127.0.0.1", port, { tls = { ca_file = c.ca, servername = "localhost" } }))
      await(s:write("named\n"))
      assert.equal("sni=localhost NAMED", await(s:read("l")))
      await(s:close())
    end)
    stop()
  end)

  it("a record that fails its integrity check after the handshake is a ConnectionError; the bytes before it were read", function()
    local c = H.certs()
    local port, stop = H.server("/usr/bin/python3 spec/servers/tls_peer.py corrupt " .. c.cert .. " " .. c.key)
    async.run(function()
      local s = await(async.connect("localhost", port, { tls = { ca_file = c.ca } }))
      assert.equal("sound", await(s:read("l")))
      local e = H.catch(await, s:read())
      assert.is_true(async.ConnectionError:is(e))
      assert.matches("^the connection was lost: TLS: [%w ]+", e.message)
      s:abort()
    end)
    stop()
  end)

  it("refuses what it cannot verify, saying why: self-signed, unknown issuer, wrong name; insecure skips the check", function()
    local c = H.certs()
    async.run(function()
      local sv = await(async.serve(upper_echo, "127.0.0.1", 0, { tls = { cert_file = c.self_cert, key_file = c.self_key } }))
      local _, self_port = sv:sockname()
      local sv2, port = tls_server(upper_echo)
      -- the system's CA store by default
      local e = H.catch(await, async.connect("localhost", self_port, { tls = true }))
      assert.is_true(async.ConnectionError:is(e))
      assert.is_true(async.OSError:is(e))
      assert.matches("certificate verify failed: self%-signed certificate", e.message)
      assert.matches("localhost:" .. self_port, e.message)
      e = H.catch(await, async.connect("localhost", port, { tls = true }))
      assert.matches("certificate verify failed: unable to get local issuer certificate", e.message)
      e = H.catch(await, async.connect("localhost", port, { tls = { ca_file = c.self_cert } }))
      assert.matches("unable to get local issuer certificate", e.message)
      e = H.catch(await, async.connect("127.0.0.1", port, { tls = { ca_file = c.ca, servername = "other.example" } }))
      assert.matches("certificate verify failed: hostname mismatch %(the certificate is not for other.example%)", e.message)
      e = H.catch(await, async.connect("127.0.0.1", self_port, { tls = { ca_file = c.self_cert } }))   -- no IP entry
      assert.matches("certificate verify failed: IP address mismatch", e.message)
      -- insecure: no check, the same stream
      local s = await(async.connect("127.0.0.1", self_port, { tls = { insecure = true } }))
      await(s:write("unchecked\n"))
      assert.equal("UNCHECKED", await(s:read("l")))
      await(s:close())
      await(sv:close()); await(sv2:close())
    end)
  end)

  it("serves TLS to Python's ssl client and to openssl s_client, both verifying us", function()
    local c = H.certs()
    async.run(function()
      local sv, port = tls_server(function(s)
        local line = await(s:read("l"))
        await(s:write("served: ", line:upper(), "\n"))
      end)
      local p = await(async.process.exec({ "env", "-u", "LD_PRELOAD", "/usr/bin/python3", "spec/servers/tls_peer.py", "client", tostring(port), c.ca },
                                         { stdout = "pipe" }))
      local out = await(p.stdout:read("a"))
      assert.equal(0, await(p:wait()))
      assert.matches("^served: HELLO FROM PYTHON TLSv1%.[23]", out)
      -- openssl s_client: -verify_return_error makes a failed verification fatal
      p = await(async.process.exec({ "env", "-u", "LD_PRELOAD", "openssl", "s_client", "-connect", "127.0.0.1:" .. port, "-servername", "localhost",
                                     "-verify_hostname", "localhost", "-CAfile", c.ca, "-verify_return_error",
                                     "-quiet", "-no_ign_eof" }, { stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
      await(p.stdin:write("from s_client\n"))
      local answer = await(p.stdout:read("l"))
      await(p.stdin:close())
      await(p.stdout:read("a")); await(p.stderr:read("a"))
      await(p:wait())
      assert.equal("served: FROM S_CLIENT", answer)
      await(sv:close())
    end)
  end)

  it("talks to openssl s_server", function()
    local c = H.certs()
    async.run(function()
      -- a free port, then s_server on it (it prints nothing machine-readable)
      local probe = await(async.serve(function() end, "127.0.0.1", 0))
      local _, port = probe:sockname()
      await(probe:close())
      local p = await(async.process.exec({ "env", "-u", "LD_PRELOAD", "openssl", "s_server", "-accept", "127.0.0.1:" .. port, "-naccept", "1",
                                           "-cert", c.cert, "-key", c.key, "-www", "-quiet" },
                                         { stdout = "null", stderr = "null" }))
      local s
      for _ = 1, 200 do                          -- until it listens
        local ok, r = pcall(await, async.connect("localhost", port, { tls = { ca_file = c.ca } }))
        if ok then s = r; break end
        await(async.sleep(0.02))
      end
      assert.truthy(s, "openssl s_server did not start")
      await(s:write("GET / HTTP/1.0\r\n\r\n"))
      local page = await(s:read("a"))
      assert.matches("^HTTP/1%.0 200 ok", page)
      assert.matches("TLSv1%.3", page)
      await(s:close())
      await(p:wait())
    end)
  end)

  it("carries megabytes both ways at once, with half-close (close_notify) and read('a')", function()
    async.run(function()
      local sv, port = tls_server(function(s)
        local all = await(s:read("a"))            -- until the client's close_notify
        await(s:write(("%d %s"):format(#all, all:sub(-5))))
      end)
      local s = await(async.connect("localhost", port, { tls = { ca_file = H.certs().ca } }))
      local big = {}
      for i = 1, 4 * 1024 do big[i] = ("%99d\n"):format(i) .. string.rep("-", 924) end
      big = table.concat(big)
      local ticks = 0
      local ticker = async.spawn(function() while true do await(async.sleep(0)); ticks = ticks + 1 end end)
      await(s:write(big))
      await(s:close_write())
      assert.equal(("%d %s"):format(#big, big:sub(-5)), await(s:read("a")))
      ticker:cancel()
      assert.is_true(ticks > 0)
      await(s:close())
      -- and the other way: 8 MiB from the server, read in pieces
      await(sv:close())
      sv, port = tls_server(function(srv) await(srv:write(string.rep("z", 8 << 20))) end)
      s = await(async.connect("localhost", port, { tls = { ca_file = H.certs().ca } }))
      local n = 0
      while true do
        local d = await(s:read())
        if not d then break end
        n = n + #d
      end
      assert.equal(8 << 20, n)
      await(s:close()); await(sv:close())
    end)
  end)

  it("holds a writer back when the peer does not read (the ciphertext waits, bounded)", function()
    async.run(function()
      local go = async.Event()
      local sv, port = tls_server(function(s)
        await(go:wait())
        local n = 0
        while n < 16 << 20 do n = n + #await(s:read()) end
        await(s:write("got all\n"))
      end)
      local s = await(async.connect("localhost", port, { tls = { ca_file = H.certs().ca } }))
      local done = false
      local writer = async.spawn(function() await(s:write(string.rep("w", 16 << 20))); done = true end)
      for _ = 1, 20 do await(async.sleep(0.01)) end
      assert.is_false(done)                       -- the socket buffers are far smaller than 16 MiB
      go:set()
      await(writer)
      assert.equal("got all", await(s:read("l")))
      await(s:close()); await(sv:close())
    end)
  end)

  it("a cancelled read loses nothing, as on a plain stream", function()
    async.run(function()
      local go = async.Event()
      local sv, port = tls_server(function(s)
        await(s:write("first "))
        await(go:wait())
        await(s:write("second\n"))
        await(s:read())
      end)
      local s = await(async.connect("localhost", port, { tls = { ca_file = H.certs().ca } }))
      assert.equal("first ", await(s:read(6)))
      local e = H.catch(await, async.wait_for(s:read("l"), 0.05))
      assert.is_true(async.TimeoutError:is(e))
      go:set()
      assert.equal("second", await(s:read("l")))   -- the wait was cleared: no InvalidStateError
      await(s:close()); await(sv:close())
    end)
  end)

  it("a client that fails its handshake never reaches the handler, and the server goes on", function()
    async.run(function()
      local handled = 0
      local sv, port = tls_server(function(s) handled = handled + 1; upper_echo(s) end)
      local plain = await(async.connect("127.0.0.1", port))   -- speaks HTTP to a TLS server
      await(plain:write("GET / HTTP/1.0\r\n\r\n"))
      await(plain:read("a"))                                   -- (an alert, maybe) then the end
      await(plain:close())
      local insecure = H.catch(await, async.connect("localhost", port, { tls = true }))   -- refuses the server
      assert.is_true(async.ConnectionError:is(insecure))
      local s = await(async.connect("localhost", port, { tls = { ca_file = H.certs().ca } }))
      await(s:write("still serving\n"))
      assert.equal("STILL SERVING", await(s:read("l")))
      assert.equal(1, handled)
      await(s:close()); await(sv:close())
    end)
  end)

  it("mutual TLS: a client certificate (cert_file, key_file) to Python's ssl server that requires one", function()
    local c = H.certs()
    local port, stop = H.server("/usr/bin/python3 spec/servers/tls_peer.py mtls " .. c.cert .. " " .. c.key .. " " .. c.ca)
    async.run(function()
      local s = await(async.connect("localhost", port, { tls = { ca_file = c.ca, cert_file = c.cert, key_file = c.key } }))
      await(s:write("with a certificate\n"))
      assert.equal("client=localhost WITH A CERTIFICATE", await(s:read("l")))
      await(s:close())
      -- without one: TLS 1.3 ends the client's handshake first, so the refusal is the first read's error
      s = await(async.connect("localhost", port, { tls = { ca_file = c.ca } }))
      await(s:write("without\n"))
      local e = H.catch(await, s:read("l"))
      assert.is_true(async.ConnectionError:is(e))
      assert.matches("TLS: .*certificate required", e.message)
      s:abort()
      assert.matches("opts.tls.key_file is required",
                     H.catch(async.connect, "localhost", port, { tls = { cert_file = c.cert } }))
    end)
    stop()
  end)

  it("mutual TLS: a server with ca_file serves only clients whose certificate it signed", function()
    local c = H.certs()
    async.run(function()
      local handled = 0
      local sv = await(async.serve(function(s) handled = handled + 1; upper_echo(s) end, "127.0.0.1", 0,
        { tls = { cert_file = c.cert, key_file = c.key, ca_file = c.ca } }))
      local _, port = sv:sockname()
      local s = await(async.connect("localhost", port, { tls = { ca_file = c.ca, cert_file = c.cert, key_file = c.key } }))
      await(s:write("signed\n"))
      assert.equal("SIGNED", await(s:read("l")))
      await(s:close())
      for _, cert in ipairs { false, "self" } do     -- no certificate; one the CA did not sign
        local opts = { ca_file = c.ca }
        if cert then opts.cert_file, opts.key_file = c.self_cert, c.self_key end
        local ok, e = pcall(function()
          local t = await(async.connect("localhost", port, { tls = opts }))
          await(t:write("refused\n"))
          return await(t:read("l"))
        end)
        assert.is_false(ok)
        assert.is_true(async.ConnectionError:is(e), tostring(e))
      end
      assert.equal(1, handled)
      await(sv:close())
    end)
  end)

  it("a client that never finishes its handshake is dropped after opts.tls.handshake_timeout; the server goes on", function()
    async.run(function()
      local c = H.certs()
      local sv = await(async.serve(upper_echo, "127.0.0.1", 0,
        { tls = { cert_file = c.cert, key_file = c.key, handshake_timeout = 0.1 } }))
      local _, port = sv:sockname()
      local silent = await(async.connect("127.0.0.1", port))     -- plain TCP, says nothing
      local took, got = H.elapsed(function() return await(async.wait_for(silent:read("a"), 30)) end)
      assert.equal("", got)                                        -- dropped: the end, nothing else
      assert.is_true(took >= 0.1)
      await(silent:close())
      local s = await(async.connect("localhost", port, { tls = { ca_file = c.ca } }))
      await(s:write("next\n"))
      assert.equal("NEXT", await(s:read("l")))
      await(s:close()); await(sv:close())
      assert.matches("handshake_timeout must be a number of seconds above 0", H.catch(async.serve, upper_echo,
        "127.0.0.1", 0, { tls = { cert_file = c.cert, key_file = c.key, handshake_timeout = 0 } }))
    end)
  end)

  it("TLS to a server that does not speak it: ConnectionError saying why; a silent one: opts.timeout", function()
    async.run(function()
      local sv, port = plain_server(function(s)
        await(s:read())
        await(s:write("HTTP/1.0 400 Bad Request\r\n\r\n"))
      end)
      local e = H.catch(await, async.connect("127.0.0.1", port, { tls = { insecure = true } }))
      assert.is_true(async.ConnectionError:is(e))
      assert.matches("the TLS handshake failed: [%w ]+", e.message)
      await(sv:close())
      sv, port = plain_server(function(s) await(s:close()) end)   -- hangs up at once
      e = H.catch(await, async.connect("127.0.0.1", port, { tls = { insecure = true } }))
      assert.is_true(async.ConnectionError:is(e))
      assert.matches("the TLS handshake failed: the peer closed the connection", e.message)
      await(sv:close())
      local ended = async.Event()
      sv, port = plain_server(function(s) await(s:read("a")); ended:set() end)   -- never answers
      e = H.catch(await, async.connect("127.0.0.1", port, { tls = { insecure = true }, timeout = 0.1 }))
      assert.is_true(async.TimeoutError:is(e))
      await(ended:wait())                        -- our side was closed: the server read the end
      await(sv:close())
    end)
  end)

  it("checks its options, and the server's files, at the call", function()
    local c = H.certs()
    async.run(function()
      assert.matches("bad argument #3 to 'connect' %(opts.tls must be true or a table, got 5%)",
                     H.catch(async.connect, "localhost", 443, { tls = 5 }))
      assert.matches("opts.tls.insecure must be a boolean, got string",
                     H.catch(async.connect, "localhost", 443, { tls = { insecure = "yes" } }))
      assert.matches("unknown option tls.verify; expected ca_file, cert_file, insecure, key_file, servername",
                     H.catch(async.connect, "localhost", 443, { tls = { verify = false } }))
      assert.matches("bad argument #4 to 'serve' %(opts.tls must be a table, got true%)",
                     H.catch(async.serve, upper_echo, "127.0.0.1", 0, { tls = true }))
      assert.matches("opts.tls.key_file is required",
                     H.catch(async.serve, upper_echo, "127.0.0.1", 0, { tls = { cert_file = c.cert } }))
      local e = H.catch(async.serve, upper_echo, "127.0.0.1", 0, { tls = { cert_file = c.dir .. "/none.crt", key_file = c.key } })
      assert.is_true(async.OSError:is(e))
      assert.equal("ENOENT", e.code)
      assert.matches("none.crt", e.message)
      assert.matches("^tls: key_file .*self.key does not match cert_file",
                     H.catch(async.serve, upper_echo, "127.0.0.1", 0, { tls = { cert_file = c.cert, key_file = c.self_key } }))
      assert.matches("cert_file .* holds no usable certificate",
                     H.catch(async.serve, upper_echo, "127.0.0.1", 0, { tls = { cert_file = c.key, key_file = c.key } }))
      e = H.catch(async.connect, "localhost", 443, { tls = { ca_file = c.dir .. "/none.crt" } })
      assert.is_true(async.OSError:is(e))
      assert.equal("ENOENT", e.code)
    end)
  end)
end)
