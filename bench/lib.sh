# What the bench scripts share; sourced, not run.

# Waits until FILE has a line with MARKER and prints what follows it (a
# server's "listening on http://ADDR" line gives ADDR).
after_marker() {
  local file=$1 marker=$2
  for _ in $(seq 600); do
    if grep -q "$marker" "$file" 2>/dev/null; then
      grep -o "$marker[^ ]*" "$file" | head -1 | sed "s|$marker||"
      return
    fi
    sleep 0.1
  done
  echo "no '$marker' in $file" >&2; cat "$file" >&2; exit 1
}
