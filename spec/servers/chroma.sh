#!/bin/sh
# Start the pinned Chroma server on 127.0.0.1 on a free port, with its data
# in a fresh temporary directory; print "PORT PID" once it answers its
# heartbeat.  Stop it with kill PID (its directory goes with it).
#   spec/servers/chroma.sh [PORT]
set -e
root="$(cd "$(dirname "$0")/../.." && pwd)"
"$root/tools/chroma.sh" install >&2
port=${1:-$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}
dir=$(mktemp -d /tmp/lua-async-chroma.XXXXXX)
cd "$root/.cache/chroma"
# the server runs in its own process group: killing PID (the wrapper below)
# takes the whole group down and removes the data directory
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
  rm -rf "$dir" "$dir.log"
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
echo "$port $wrapper"
