-- Writes the rockspec of a release beside the scm one:
--   lua5.4 tools/release-rockspec.lua VERSION SOURCE_URL [OUT]
-- VERSION is x.y.z; SOURCE_URL is where the tagged source is served
-- (git+https://HOST/OWNER/lua-async.git, tagged vVERSION; or a .tar.gz
-- whose top directory is lua-async-VERSION).  Everything else is the scm
-- rockspec's, so the two cannot drift apart.
local version, url, out = arg[1], arg[2], arg[3]
if not (version and version:match("^%d+%.%d+%.%d+$") and url and url:match("^%a[%w+.-]*://")) then
  io.stderr:write("usage: lua5.4 tools/release-rockspec.lua VERSION(x.y.z) SOURCE_URL [OUT]\n")
  os.exit(2)
end
local f = assert(io.open("lua-async-scm-1.rockspec", "rb"))
local text = f:read("a")
f:close()
local source
if url:match("^git") then
  source = ('source = {\n  url = %q,\n  tag = %q,\n}'):format(url, "v" .. version)
else
  source = ('source = {\n  url = %q,\n  dir = %q,\n}'):format(url, "lua-async-" .. version)
end
local n1, n2
text, n1 = text:gsub('version = "scm%-1"', ('version = "%s-1"'):format(version), 1)
text, n2 = text:gsub('source = %b{}', function() return source end, 1)
assert(n1 == 1 and n2 == 1, "lua-async-scm-1.rockspec: no version or source line to replace")
out = out or ("lua-async-" .. version .. "-1.rockspec")
f = assert(io.open(out, "wb"))
f:write(text)
f:close()
print(out)
