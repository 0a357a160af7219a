# Sourced by infra/browser.sh and infra/fuzz.sh: starts the `make dev` stack in the background on
# the ports they export beforehand (so it runs beside a developer's), in a temporary STATE_DIR,
# and stops it on exit. `$log` is its output; `stack_logs` prints what helps after a failure.

# The functions are built up front, one by one as cargo lambda watch builds them (the same
# features), so no request waits for a compile.
for f in functions/*/; do cargo build --quiet -p "$(basename "$f")"; done
STATE_DIR=$(mktemp -d)
export STATE_DIR
log="$STATE_DIR/dev.log"
infra/dev.sh >"$log" 2>&1 &
dev=$!
cleanup() { kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; rm -rf "$STATE_DIR"; }
trap cleanup EXIT
for _ in $(seq 1 900); do
  grep -q "Portico is running" "$log" && break
  kill -0 "$dev" 2>/dev/null || { cat "$log"; echo "the make dev stack failed" >&2; exit 1; }
  sleep 0.2
done
grep -q "Portico is running" "$log" || { cat "$log"; exit 1; }

stack_logs() {
  echo "--- stack log (last lines)" >&2; tail -40 "$log" >&2
  for f in gateway web; do
    [ -f "$STATE_DIR/$f.log" ] && { echo "--- $f.log" >&2; tail -20 "$STATE_DIR/$f.log" >&2; }
  done
}
