-- wrk script: POST top-10 queries to one Chroma collection, cycling through
-- the bodies in the file named by WRK_BODIES (one JSON body per line).
local bodies, i = {}, 0
for line in io.lines(os.getenv("WRK_BODIES")) do bodies[#bodies + 1] = line end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
