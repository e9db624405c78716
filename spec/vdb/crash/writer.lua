-- spec/vdb/crash/writer.lua PATH ACKS TASKS N: TASKS concurrent tasks each doing
-- its N ops (spec/vdb/crash/ops.lua) on PATH, writing "t k" to ACKS once op k of
-- task t is acknowledged; the crash spec kills it with -9 at a random moment.
package.cpath = "./?.so;" .. package.cpath
package.path = "./spec/?.lua;" .. package.path
local async, vdb = require "async", require "vdb"
local O = require "vdb.crash.ops"
local await = async.await
local path, acks, tasks, n = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local out = assert(io.open(acks, "a"))
out:setvbuf("line")
async.run(function()
  local db = await(vdb.connect("file:" .. path))
  local col = await(db:collection("c"))
  local work = {}
  for t = 1, tasks do
    work[t] = async.fn(function()
      local ops = O.ops(t, n)
      for k, op in ipairs(ops) do
        if op.kind == "delete" then
          await(col:delete(op.ids))
        else
          local vecs = {}
          for i = 1, #op.ids do vecs[i] = O.vector(t, k) end
          local batch = { ids = op.ids, vectors = vecs }
          if op.kind == "put" then await(col:batch_insert(batch)) else await(col:upsert(batch)) end
        end
        out:write(t, " ", k, "\n")
      end
    end)()
  end
  await(async.gather(work))
  out:write("done\n")
end)
