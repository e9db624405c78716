-- Every tutorial twin in examples/ runs and prints what the tutorial prints,
-- with the same timing story: order exact, times between what the delays
-- take and what they would take one after the other.
local function run(name, args, env)
  local t0 = os.time()
  local p = assert(io.popen((env or "") .. " lua5.4 -W examples/" .. name .. " " .. (args or "") .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return out, out:match("exit=(%d+)") == "0"
end

local function lines_in_order(out, expected)
  local pos = 1
  for _, line in ipairs(expected) do
    local s, e = out:find(line, pos, true)
    assert(s, ("expected %q after position %d in:\n%s"):format(line, pos, out))
    pos = e + 1
  end
end

describe("examples", function()
  it("3: coroutine objects and the three awaitables", function()
    local out, ok = run("3_core_concepts.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "true", "done", "coroutine result", "coroutine result", "Future result", "2 results" })
  end)

  it("4.1 greets", function()
    local out, ok = run("4_1_greet.lua")
    assert.is_true(ok, out); assert.matches("Hello, World!", out)
  end)

  it("4.2 gathers in argument order, then awaits two tasks", function()
    local out, ok = run("4_2_concurrency.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "['Result 1', 'Result 2', 'Result 3']", "Result 1\tResult 2" })
  end)

  it("4.3 catches one error and lists another", function()
    local out, ok = run("4_3_errors.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "Caught: Something went wrong", "Result: Result 1", "Error: Something went wrong", "Result: Result 3" })
  end)

  it("4.4 times out", function()
    local out, ok = run("4_4_timeout.lua")
    assert.is_true(ok, out); assert.matches("Operation timed out!", out)
  end)

  it("4.5 searches a batch of queries concurrently on the embedded store", function()
    local out, ok = run("4_5_batch_search.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "[Q0] search started", "[Q1] search started", "[Q2] search started", "got 3 results" })
    local starts = out:find("[Q2] search started", 1, true)
    local first_done = out:find("] done", 1, true)
    assert.is_true(starts < first_done)            -- all started before any finished
  end)

  it("7.8 and 7.9 on the real client: a <close> connection, and scan", function()
    local out, ok = run("7_08_vdb_connection.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "[main] connecting...", "[main] connected", "query result: doc_1 SELECT * FROM vectors",
                          "[main] closing connection...", "[main] connection closed" })
    out, ok = run("7_09_vdb_scan.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "streaming vectors:", "  received: 1", "  received: 2", "  received: 3" })
  end)

  it("6.1 two sleeps of 2 and 1 s take 2 s, B ends first", function()
    local out, ok = run("6_1_await_does_not_block.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "A: start", "B: start", "B: end", "A: end" })
    local total = tonumber(out:match("total: ([%d.]+) s"))
    assert.is_true(total >= 1.9 and total < 3, out)     -- less than the 3 s of one after the other
  end)

  it("6.2 warns that a coroutine was never awaited", function()
    local out, ok = run("6_2_calling_does_not_run.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "<coroutine object", "was never awaited", "fetching data...", "data" })
  end)

  it("6.3 a blocking sleep serialises the tasks, and debug mode names them", function()
    local out, ok = run("6_3_blocking_sleep.lua")
    assert.is_true(ok, out)
    assert.matches("Executing <Task name='Task%-%d+'> took 0%.%d+ seconds", out)
    local bad, good = tonumber(out:match("bad: ([%d.]+)")), tonumber(out:match("good: ([%d.]+)"))
    assert.is_true(bad >= 0.9, out)                     -- two blocking 0.5 s sleeps, one after the other
    assert.is_true(good >= 0.45 and good < bad, out)    -- together
  end)

  it("7.1 to 7.10 (the tour) print the tutorial's output with its timings", function()
    local out, ok = run("demo.lua")
    assert.is_true(ok, out)
    lines_in_order(out, {
      "=== 1. Basic async function ===", "async operation started", "async operation finished", "returned: result",
      "=== 2. Concurrent execution ===", "[A] start (delay=1s)", "[B] start (delay=0.5s)", "[C] start (delay=0.8s)",
      "[B] done", "[C] done", "[A] done", "elapsed: ", "results: ['A_result', 'B_result', 'C_result']",
      "=== 3. create_task ===", "tasks started, doing other things...", "[Task1] start", "[Task2] start",
      "other things done", "[Task1] done", "[Task2] done", "elapsed: ",
      "=== 4. Exceptions ===", "caught: simulated error", "gather error handling:",
      "  task0: success", "  task1: failed - simulated error", "  task2: success",
      "=== 5. Timeouts ===", "operation timed out!", "batch with timeouts:",
      "  task0: finished", "  task1: timed out", "  task2: finished",
      "=== 6. Concurrency limit ===", "total: ", "expected: 9 tasks / 3 at once * 0.3s = 0.9s",
      "=== 7. Async vector-database client ===", "database connected", "batch insert of 100 vectors:",
      "  inserted 100, took: ", "batch search of 10 queries:", "  finished 10 queries, took: ",
      "  best match for query 1: vec_", "database disconnected",
      "=== 8. Async context manager ===", "[primary] connecting...", "[primary] connected",
      "query result: SELECT * FROM vectors", "[primary] closing connection...", "[primary] connection closed",
      "=== 9. Async iterator ===", "streaming vectors:", "  received: 1", "  received: 2", "  received: 3",
      "=== 10. Practical patterns ===", "retry pattern:",
    })
    local gather_t = tonumber(out:match("elapsed: ([%d.]+)s %(concurrent"))
    assert.is_true(gather_t >= 0.99 and gather_t < 2.3, "gather took " .. gather_t)   -- less than one after the other
    local sem_t = tonumber(out:match("total: ([%d.]+)s"))
    assert.is_true(sem_t >= 0.89 and sem_t < 2.7, "semaphore demo took " .. sem_t)   -- less than one at a time
    -- 7.6: never more than three at once
    local running, peak = 0, 0
    for ev in out:gmatch("%[%d%] (%a+)") do
      if ev == "got" then running = running + 1 elseif ev == "done" then running = running - 1 end
      peak = math.max(peak, running)
    end
    assert.equal(3, peak)
    assert.is_true(out:find("final result: success", 1, true) ~= nil or out:find("every attempt failed", 1, true) ~= nil)
  end)

  it("7.10 retries until success with a seed that fails twice", function()
    -- find the outcome for a fixed seed rather than assume the generator
    local out, ok = run("7_10_retry.lua", "7")
    assert.is_true(ok, out)
    local fails = select(2, out:gsub("attempt %d failed: ConnectionError: connection failed", ""))
    if out:find("final result: success", 1, true) then
      assert.is_true(fails < 5)
    else
      assert.equal(4, fails); assert.matches("every attempt failed", out)
    end
  end)

  it("the I/O tour: an echo server and client, a subprocess, a file copy, Ctrl-C, and TLS", function()
    local out, ok = run("io_1_echo.lua")
    assert.is_true(ok, out)
    lines_in_order(out, { "listening on 127.0.0.1:", "echo: hello", "echo: world" })
    -- (its children, ls and sort, get the sanitizer runtime the sanitizer
    -- run preloads, and sort's own leaks would be its exit code: leak
    -- checks are off for this one run; spec/io/process_spec.lua checks the
    -- Lua side with them on)
    out, ok = run("io_2_subprocess.lua", nil, os.getenv("SANITIZED") and "env ASAN_OPTIONS=detect_leaks=0" or "")
    assert.is_true(ok, out)
    lines_in_order(out, { "ls / listed", "exit code 0", "apple", "fig", "pear", "sort exited with\t0" })
    local copy = os.tmpname()
    out, ok = run("io_3_copy_file.lua", "examples/demo.lua " .. copy)
    assert.is_true(ok, out)
    local a, b = io.open("examples/demo.lua"):read("a"), io.open(copy):read("a")
    assert.is_true(a == b)
    os.remove(copy)
    local log = os.tmpname()
    os.execute(("lua5.4 examples/io_4_ctrl_c.lua > %s 2>&1 & pid=$!; for i in $(seq 100); do grep -q working %s && break; sleep 0.02; done; "
                .. "kill -INT $pid; wait $pid"):format(log, log))
    out = io.open(log):read("a")
    os.remove(log)
    lines_in_order(out, { "working; press Ctrl-C", "cleaning up", "clean", "interrupted, cleanly" })
    -- (openssl, its child, gets no sanitizer runtime's leak checks: as io_2's children)
    out, ok = run("io_5_tls.lua", nil, os.getenv("SANITIZED") and "env ASAN_OPTIONS=detect_leaks=0" or "")
    assert.is_true(ok, out)
    lines_in_order(out, { "hello over TLS, lua", "the TLS handshake failed: certificate verify failed: self-signed certificate" })
  end)
end)
