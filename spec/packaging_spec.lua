-- README "Install": a release rockspec, made by `make release`, builds and
-- installs from its source tarball with luarocks, as a user's would
local H = require "helper"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out, out:match("exit=(%d+)%s*$") == "0"
end

describe("packaging", function()
  local has_git = select(2, sh("git ls-files --error-unmatch Makefile >/dev/null"))   -- (this tree is the checkout)
  local has_luarocks = select(2, sh("command -v luarocks >/dev/null"))

  -- (the sanitizer run works on a copy of the tree without .git)
  local run = (has_git and has_luarocks) and it or pending
  run("make release writes a rockspec whose tarball luarocks builds, installs and loads", function()
    local dir = H.tmpfile()
    assert(os.execute("mkdir -p " .. dir))
    local version = "0.0.1"
    local url = "file://" .. dir .. "/lua-async-" .. version .. ".tar.gz"
    local out, ok = sh(("make -s release VERSION=%s SOURCE_URL=%s"):format(version, url))
    assert(ok, out)
    local rockspec = "build/lua-async-" .. version .. "-1.rockspec"
    local text = H.slurp(rockspec)
    assert.matches('version = "0.0.1%-1"', text)
    assert.matches('url = "' .. url:gsub("%p", "%%%0") .. '"', text)
    assert.matches('dir = "lua%-async%-0.0.1"', text)
    -- the build and install parts are the scm rockspec's
    local scm = H.slurp("lua-async-scm-1.rockspec")
    assert.equal(scm:match("build = %b{}"), text:match("build = %b{}"))
    assert(os.execute(("cp build/lua-async-%s.tar.gz %s/"):format(version, dir)))
    out, ok = sh(("cd %s && luarocks --lua-version 5.4 build --tree %s/tree %s/%s"):format(dir, dir, os.getenv("PWD"), rockspec))
    assert(ok, out)
    out, ok = sh(("LUA_CPATH='%s/tree/lib/lua/5.4/?.so' lua5.4 -e '%s'"):format(dir,
      'local async = require "async"; require "vdb"; require "async.http"; '
      .. 'print(async.run(function() return 6 * 7 end), package.searchpath("async", package.cpath))'))
    assert(ok, out)
    assert.matches("^42\t" .. dir:gsub("%p", "%%%0") .. "/tree/", out)
    os.execute("rm -rf " .. dir)
  end)

  it("the git form of a release names the tag", function()
    local out = H.tmpfile()
    local res, ok = sh(("lua5.4 tools/release-rockspec.lua 1.2.3 git+https://example.org/lua-async.git %s"):format(out))
    assert(ok, res)
    local text = H.slurp(out)
    assert.matches('url = "git%+https://example.org/lua%-async.git"', text)
    assert.matches('tag = "v1.2.3"', text)
    os.remove(out)
    local _, bad = sh("lua5.4 tools/release-rockspec.lua 1.2 nowhere")
    assert.is_false(bad)
  end)
end)
