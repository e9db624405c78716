-- A TLS server and a client that verifies it.  openssl (run as a child
-- process) makes a throwaway certificate for localhost; the server serves
-- with it, the client trusts it as its CA (ca_file) and checks the name.
-- Against a real server, opts.tls = true checks it against the system's
-- CA store.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local await = async.await

async.run(function()
  local dir = os.tmpname()
  os.remove(dir)
  await(async.fs.mkdir(dir))
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local openssl = await(async.process.exec({ "openssl", "req", "-x509", "-newkey", "ec",
    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert }, { stderr = "null" }))
  assert(await(openssl:wait()) == 0, "openssl could not make a certificate")

  local server = await(async.serve(function(stream)
    local line = await(stream:read("l"))
    await(stream:write("hello over TLS, ", line, "\n"))
  end, "127.0.0.1", 0, { tls = { cert_file = cert, key_file = key } }))
  local _, port = server:sockname()

  local client <close> = await(async.connect("localhost", port, { tls = { ca_file = cert } }))
  await(client:write("lua\n"))
  print(await(client:read("l")))

  -- the same server, checked against the system's CA store: refused, and why
  local ok, e = pcall(await, async.connect("localhost", port, { tls = true }))
  print(ok, e.message)

  await(server:close())
  await(async.fs.remove(dir, { recursive = true }))
end)
