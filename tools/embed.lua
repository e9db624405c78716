-- embed.lua NAME FILE: print FILE as a C string constant NAME
local name, path = arg[1], arg[2]
local src = assert(io.open(path, "rb")):read("a")
io.write("/* generated from ", path, " by tools/embed.lua: do not edit */\n")
io.write("static const char ", name, "[] =\n")
for line in (src .. (src:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
  io.write('  "', (line:gsub('[\\"]', "\\%0")), '\\n"\n')
end
io.write(";\n")
