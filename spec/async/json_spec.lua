-- docs/reference.md "JSON"
local H = require "helper"
local async, await = H.async, H.await
local http, json = async.http, async.json

describe("async.json", function()
  it("round-trips tables, and float32 values exactly", function()
    local f = string.unpack("<f", string.pack("<f", 0.1))
    local s = json.encode { a = { 1, 2.5, f }, b = "x\"y", c = true, d = json.null }
    local t = json.decode(s)
    assert.same({ 1, 2.5, f }, t.a)
    assert.equal("x\"y", t.b)
    assert.equal(json.null, t.d)
    assert.equal("9223372036854775807", json.encode(math.maxinteger))   -- integers print exactly
    assert.equal(2 ^ 53, json.decode(json.encode(2 ^ 53)))              -- and read back exactly to 2^53
    assert.equal("integer", math.type(json.decode("42")))
  end)
  it("encodes and decodes every byte of a string, NULs included", function()
    assert.equal('"a\\u0000b"', json.encode("a\0b"))
    assert.equal("a\0b", json.decode(json.encode("a\0b")))
    assert.same({ ["k\0x"] = "v\0w" }, json.decode(json.encode { ["k\0x"] = "v\0w" }))
    assert.equal("a\\u0000b", json.decode('"a\\\\u0000b"'))          -- an escaped backslash is no NUL
    assert.equal("\u{FDD0}\0", json.decode('"\\uFDD0\\u0000"'))         -- (the stand-in is not confused with a real one)
  end)

  it("json.array marks an array, also empty; decoded arrays keep the mark, so [] and {} round-trip", function()
    assert.equal("[]", json.encode(json.array {}))
    assert.equal("[]", json.encode(json.array()))
    assert.equal("{}", json.encode {})
    assert.equal("[]", json.encode(json.decode("[]")))
    assert.equal("{}", json.encode(json.decode("{}")))
    local t = json.decode('{"a":[],"b":{}}')
    assert.equal("[]", json.encode(t.a))
    assert.equal("{}", json.encode(t.b))
    assert.same({ 1, 2 }, json.decode("[1,2]"))
    assert.has_error(function() json.encode(json.array { 1, nil, 3, x = 1 }) end)
    assert.has_error(function() json.array(setmetatable({}, {})) end)
  end)

  it("says why it refuses: nesting past 1,000 levels, a number that overflows, text that is not UTF-8", function()
    local ok, e = pcall(json.decode, ("["):rep(1001) .. ("]"):rep(1001))
    assert.is_false(ok); assert.matches("nested deeper than 1000 levels", e)
    ok, e = pcall(json.decode, "1" .. ("0"):rep(400))
    assert.is_false(ok); assert.matches("out of range", e)
    ok, e = pcall(json.decode, '"\xff"')
    assert.is_false(ok); assert.matches("not UTF%-8", e)
    ok, e = pcall(json.decode, '{"\xc0\xaf": 1}')                        -- an overlong form
    assert.is_false(ok); assert.matches("not UTF%-8", e)
    ok, e = pcall(json.encode, { "ok", "\xed\xa0\x80" })                  -- a surrogate
    assert.is_false(ok); assert.matches("not UTF%-8", e)
    assert.equal('"é ✓ \u{1F600}"', json.encode("é ✓ \u{1F600}"))
  end)

  it("refuses what JSON cannot hold, and text that is not JSON", function()
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode { print } end)
    assert.has_error(function() json.decode('{"a": 1') end)
    assert.has_error(function() json.decode('[1] x') end)
  end)
end)
