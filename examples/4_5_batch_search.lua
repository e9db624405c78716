-- Tutorial 4.5: a batch of vector searches run concurrently, on the real
-- embedded store (vdb), each search started as its own coroutine.
package.cpath = (arg[0]:match("(.*/)examples/") or "./") .. "?.so;" .. package.cpath
local async = require "async"
local vdb = require "vdb"
local await = async.await

local async_vector_search = async(function(client, query, name)
  print(("[%s] search started"):format(name))
  local hits = await(client:search(query, 3))
  print(("[%s] done"):format(name))
  return { query = name, results = hits }
end)

local batch_search = async(function(client, queries)
  local tasks = {}
  for i, q in ipairs(queries) do tasks[i] = async_vector_search(client, q, "Q" .. (i - 1)) end
  return await(async.gather(tasks))
end)

async.run(function()
  local client <close> = await(vdb.connect())          -- in-process, no server
  await(client:batch_insert { a = { 0.1, 0.2 }, b = { 0.3, 0.4 }, c = { 0.5, 0.6 }, d = { 0.7, 0.8 } })
  local queries = { { 0.1, 0.2 }, { 0.3, 0.4 }, { 0.5, 0.6 } }
  local results = await(batch_search(client, queries))
  print(("got %d results"):format(#results))
end)
