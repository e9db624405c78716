-- README "The file: format": crash testing.  A writer with three concurrent
-- tasks is killed with -9 at a random moment, many times; each reopen must
-- hold every acknowledged write (and of the writes in flight, each either
-- whole or not at all).  Then a random byte of the file is damaged: a plain
-- open refuses it and changes nothing; recover opens it with no record
-- holding a value that was never written to it.  CRASH_SEED=N repeats a
-- run; CRASH_DEBUG=1 prints what each trial had acknowledged.
local H = require "helper"
local async, await = H.async, H.await
local vdb = require "vdb"
local O = require "vdb.crash.ops"

local TRIALS, TASKS, OPS = 12, 3, 2000
local seed = tonumber(os.getenv("CRASH_SEED") or "") or os.time()
math.randomseed(seed)

local slurp = H.slurp

-- A zombie is dead (whoever reaps it may take its time), but its files
-- close only once every thread has left (one may still be in an fsync)
local function alive(pid)
  local p = io.popen(("cat /proc/%d/task/*/stat 2>/dev/null"):format(pid))
  local stats = p:read("a")
  p:close()
  for state in stats:gmatch("%d+ %b() (%a)") do
    if state ~= "Z" and state ~= "X" then return true end
  end
  return false
end

-- the last acknowledged op of each task
local function acked(path)
  local last = {}
  for t = 1, TASKS do last[t] = 0 end
  for line in io.lines(path) do
    local t, k = line:match("^(%d+) (%d+)$")
    if t then last[tonumber(t)] = math.max(last[tonumber(t)], tonumber(k)) end
  end
  return last
end

-- the records of the store: id -> the op index k in its vector
local function records(path, opts)
  return async.run(function()
    local db <close> = await(vdb.connect("file:" .. path, opts))
    local got = {}
    for _, r in ipairs(await((await(db:collection("c"))):get())) do got[r.id] = math.tointeger(r.vector[2]) end
    return got, db.recovered
  end)
end

local function task_of(id) return tonumber(id:match("^t(%d+)_")) end

local function same(a, b)
  for k, v in pairs(a) do if b[k] ~= v then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

describe("vdb file: crash testing (seed " .. seed .. ")", function()
  it(("survives %d kill -9s at random moments: every acknowledged write kept, none half-applied"):format(TRIALS), function()
    local ops = {}
    for t = 1, TASKS do ops[t] = O.ops(t, OPS) end
    for trial = 1, TRIALS do
      local path = os.tmpname()
      os.remove(path)
      local acks = path .. ".acks"
      local p = assert(io.popen(("exec 2>/dev/null; lua5.4 spec/vdb/crash/writer.lua %s %s %d %d >/dev/null & echo $!")
        :format(path, acks, TASKS, OPS)))
      local pid = p:read("n")
      p:close()
      os.execute(("sleep %.3f"):format(0.05 + math.random() * 0.35))
      os.execute(("kill -9 %d 2>/dev/null"):format(pid))
      while alive(pid) do os.execute("sleep 0.01") end
      local last = acked(acks)
      if os.getenv("CRASH_DEBUG") then io.stderr:write(("trial %d: acked %d %d %d\n"):format(trial, last[1], last[2], last[3])) end
      local got = records(path)
      local by_task = {}
      for t = 1, TASKS do by_task[t] = {} end
      for id, k in pairs(got) do by_task[task_of(id)][id] = k end
      for t = 1, TASKS do
        local ok = same(by_task[t], O.state(ops[t], last[t])) or
                   (last[t] < OPS and same(by_task[t], O.state(ops[t], last[t] + 1)))
        if not ok then
          local want, diff = O.state(ops[t], last[t]), {}
          for id, k in pairs(by_task[t]) do if want[id] ~= k then diff[#diff + 1] = ("%s: store %s, acked state %s"):format(id, k, tostring(want[id])) end end
          for id, k in pairs(want) do if by_task[t][id] == nil then diff[#diff + 1] = ("%s: store nil, acked state %s"):format(id, k) end end
          table.sort(diff)
          error(("trial %d (seed %d): task %d acknowledged op %d (next: %s), the store holds another state:\n%s"):format(
            trial, seed, t, last[t], ops[t][last[t] + 1] and ops[t][last[t] + 1].kind, table.concat(diff, "\n", 1, math.min(#diff, 20))))
        end
      end
      -- one damaged byte anywhere: refused, untouched; recover invents nothing
      local before = assert(slurp(path))
      local at = math.random(0, #before - 1)
      local damaged = before:sub(1, at) .. string.char(before:byte(at + 1) ~ (1 << math.random(0, 7))) .. before:sub(at + 2)
      local f = assert(io.open(path, "wb")); f:write(damaged); f:close()
      local okopen, e = pcall(records, path)
      assert(not okopen and vdb.Error:is(e) and e.code == "corrupt",
             ("trial %d (seed %d): a flipped bit at %d of %d was not refused: %s"):format(trial, seed, at, #before, tostring(e)))
      assert(slurp(path) == damaged, "a refused open changed the file")
      if at >= 32 then                                     -- (a damaged header: nothing of the file is trusted)
        local rec, report = records(path, { recover = true })
        assert.is_true(report.skipped_records >= 1)
        for id, k in pairs(rec) do
          local t = task_of(id)
          local op = ops[t][k]
          local wrote = false
          for _, x in ipairs(op and op.kind ~= "delete" and op.ids or {}) do wrote = wrote or x == id end
          assert(wrote and k <= last[t] + 1, ("trial %d (seed %d): %s holds op %d, never written to it"):format(trial, seed, id, k))
        end
        assert.equal(damaged, slurp(report.original))
      end
      for _, suffix in ipairs { "", ".acks", ".damaged", ".tmp" } do os.remove(path .. suffix) end
    end
  end)
end)
