#!/bin/sh
# Start the pinned Chroma server on 127.0.0.1 on a free port, with its data
# in a fresh temporary directory; print "PORT PID SERVER_PID" once it
# answers its heartbeat.  Stop it with kill PID (its directory goes with
# it).  Given PORT and DIR, it serves DIR on PORT and leaves DIR behind
# (a restart after a crash); SERVER_PID is the server itself, for kill -9.
#   spec/servers/chroma.sh [PORT [DIR]]
set -e
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/tools/chroma.sh" install >&2
port=${1:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}
if [ -n "$2" ]; then dir=$2 keep=1; else dir=$(mktemp -d /tmp/lua-async-chroma.XXXXXX) keep=; fi
cd "$root/.cache/chroma"
# the wrapper below stops the server when killed (or when WATCH_PID ends)
# and then removes the data directory, unless it was given
(
  set +e
  setsid ./node_modules/.bin/chroma run --path "$dir" --host 127.0.0.1 --port "$port" >"$dir.log" 2>&1 &
  child=$!
  trap 'kill $child 2>/dev/null' TERM INT
  if [ -n "$WATCH_PID" ]; then     # stop with the test process, however it ends
    (while kill -0 "$WATCH_PID" 2>/dev/null; do sleep 1; done; kill $child 2>/dev/null) &
  fi
  wait $child
  kill $child 2>/dev/null
  wait $child 2>/dev/null
  [ -n "$keep" ] || rm -rf "$dir"
  rm -f "$dir.log"
) >/dev/null &
wrapper=$!
# wait up to 30 s for the heartbeat
if ! node -e '
  const url = `http://127.0.0.1:${process.argv[1]}/api/v2/heartbeat`, t0 = Date.now();
  (async () => { for (;;) {
    try { if ((await fetch(url)).ok) process.exit(0); } catch {}
    if (Date.now() - t0 > 30000) process.exit(1);
    await new Promise((r) => setTimeout(r, 100));
  } })();' "$port"; then
  echo "chroma did not start; its log:" >&2; cat "$dir.log" >&2; kill $wrapper; exit 1
fi
echo "$port $wrapper $(pgrep -f "chroma run --path $dir " | head -1)"
