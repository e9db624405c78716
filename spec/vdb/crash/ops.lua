-- spec/vdb/crash/ops.lua: the writes of one task of the crash spec, the same
-- sequence for the writer (which does them) and the checker (which replays
-- them in memory): op k of task t is drawn from a generator seeded by t.
local M = {}

-- the op list of task t, n ops: { kind = "put"|"upsert"|"delete", ids = {...} }
function M.ops(t, n)
  local rng = (function(seed)                 -- a small LCG: the same on every Lua
    local x = seed
    return function(m) x = (x * 1103515245 + 12345) % 2147483648; return x % m + 1 end
  end)(t * 7919 + 17)
  local ops, names, at, next_id = {}, {}, {}, 0      -- the live ids: a list, and each one's place in it
  local function add(id) names[#names + 1] = id; at[id] = #names end
  local function remove(id)
    local i = at[id]
    if not i then return end
    local last = names[#names]
    names[i], at[last] = last, i
    names[#names], at[id] = nil, nil
  end
  for k = 1, n do
    local r, ids = rng(10), {}
    if r <= 5 or #names == 0 then                          -- a batch of new records
      for _ = 1, rng(20) do next_id = next_id + 1; ids[#ids + 1] = ("t%d_%d"):format(t, next_id) end
      ops[k] = { kind = "put", ids = ids }
      for _, id in ipairs(ids) do add(id) end
    elseif r <= 8 then                                     -- replace a few
      local seen = {}
      for _ = 1, math.min(#names, rng(5)) do
        local id = names[rng(#names)]
        if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
      end
      ops[k] = { kind = "upsert", ids = ids }
    else                                                   -- delete a few
      for _ = 1, math.min(#names, rng(4)) do ids[#ids + 1] = names[rng(#names)] end
      ops[k] = { kind = "delete", ids = ids }
      for _, id in ipairs(ids) do remove(id) end
    end
  end
  return ops
end

-- the vector op k writes for an id
function M.vector(t, k) return { t, k, 1 } end

-- the state after ops 1..k: id -> k of its last write
function M.state(ops, k)
  local s = {}
  for j = 1, k do
    local op = ops[j]
    for _, id in ipairs(op.ids) do
      if op.kind == "delete" then s[id] = nil else s[id] = j end
    end
  end
  return s
end

return M
