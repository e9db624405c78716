-- make demo: the vector-database client on the embedded store, then a tour
-- of the tutorial's examples, run in order.
local dir = arg[0]:match("(.*/)") or "./"
local tour = {
  "7_01_basic.lua", "7_02_concurrent.lua", "7_03_create_task.lua", "7_04_exceptions.lua",
  "7_05_timeouts.lua", "7_06_semaphore.lua", "7_07_vector_db.lua", "7_08_context_manager.lua",
  "7_09_async_iterator.lua", "7_10_retry.lua",
}
for _, name in ipairs(tour) do
  local chunk = assert(loadfile(dir .. name))
  arg = { [0] = dir .. name }
  chunk()
end
