#!/usr/bin/env bash
# The escucha demo, end to end, on one machine: installs what is missing, builds, starts a
# local webhook receiver, then `escucha up` runs the whole pipeline on free ports (a private
# redis-server, the notifier, the aggregator, two classifiers, the broker, the dashboard API
# and a collector replaying the sample data). It prints per-topic counts, the alert that was
# raised, the weekly digests and the dashboard's URL and token, then stops everything cleanly
# (`escucha up` stops the collector first, so the pipeline drains). Everything it writes goes
# under out/demo/: the logs of every process, the status lines of `escucha up` (status.log).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
out="$top/out/demo"
build="$top/build"

say() { printf '\033[1m== %s\033[0m\n' "$*"; }

say "installing missing Debian packages (if any)"
scripts/deps.sh

say "building"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DESC_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

rm -rf "$out"
mkdir -p "$out/outbox"
PY=/usr/bin/python3

say "generating the sample data (deterministic)"
# --not-after now: while the demo week (2026-W47) is not over, its later posts are left out
# instead of arriving from the future
$PY examples/gen_posts.py --out "$out/posts.jsonl" --not-after now
lines=$(wc -l <"$out/posts.jsonl")
echo "$lines posts in $out/posts.jsonl"

pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "starting a local webhook receiver"
$PY tests/support/webhook_sink.py --out "$out/webhooks.jsonl" >"$out/webhook.port" 2>"$out/webhook.log" &
pids+=($!)
for _ in $(seq 1 100); do
    [ -s "$out/webhook.port" ] && break
    sleep 0.1
done
hook_port=$(head -n1 "$out/webhook.port")

# The dashboard's admin token (only its hash goes into the config).
bin="$build"
newtok=$("$bin/api/escucha-api" --new-token)
api_token=$(awk '/^token:/{print $2}' <<<"$newtok")
api_port=$(free_port)

# The demo config, with this run's ports and paths. Its "redis" section names no server, so
# `escucha up` starts a private redis-server in out/demo.
$PY - "$out" "$hook_port" "$(awk '/^sha256:/{print $2}' <<<"$newtok")" "$api_port" \
    "$build/web/dist" "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" <<'PYEOF'
import json, sys
out, hook, digest, api_port, web, p1, p2, p3, p4 = sys.argv[1:]
cfg = json.load(open("examples/escucha.json"))
cfg["redis"] = {"prefix": "esc"}
cfg["bus"] = {"collect": "tcp://127.0.0.1:" + p1, "classify": "tcp://127.0.0.1:" + p2,
              "aggregate": "tcp://127.0.0.1:" + p3, "notify": "tcp://127.0.0.1:" + p4}
cfg["sources"][0]["path"] = out + "/posts.jsonl"
cfg["notifier"]["outbox"] = out + "/outbox"
cfg["api"] = {"listen": "127.0.0.1:" + api_port, "web_root": web,
              "tokens": [{"name": "demo", "team": "*", "role": "admin", "sha256": digest}]}
for team in cfg["teams"]:
    for hook_cfg in team.get("webhooks", []):
        hook_cfg["url"] = "http://127.0.0.1:%s/hooks/%s" % (hook, team["id"])
json.dump(cfg, open(out + "/escucha.json", "w"), ensure_ascii=False, indent=1)
PYEOF
cfg="$out/escucha.json"
export ESC_HOOK_SECRET_GOBERNANZA="demo-secret-$$"

say "escucha up: redis, notifier, aggregator, 2 classifiers, broker, API, collector (replays the sample data)"
t0=$(date +%s%N)
"$bin/cli/escucha" up "$cfg" --classifiers 2 --run-dir "$out" >"$out/status.log" 2>"$out/up.log" &
up=$!
pids+=($up)
done_n=0
for _ in $(seq 1 1200); do
    if [[ "$(ps -o stat= -p "$up" 2>/dev/null || echo Z)" == Z* ]]; then
        echo "escucha up stopped early:" >&2
        cat "$out/up.log" >&2
        exit 1
    fi
    if [ -S "$out/redis.sock" ]; then
        done_n=$(redis-cli -s "$out/redis.sock" get esc:agg:processed 2>/dev/null || true)
        [ "${done_n:-0}" -ge "$lines" ] && break
    fi
    sleep 0.1
done
t1=$(date +%s%N)
echo "processed ${done_n:-0} posts in $(( (t1 - t0) / 1000000 )) ms (from \`escucha up\` to the last count in Redis)"
for _ in $(seq 1 30); do  # the status line once the counts of all posts are in it
    grep -q "| counted $lines |" <(tail -n1 "$out/status.log") && break
    sleep 0.1
done
echo "escucha up status: $(tail -n1 "$out/status.log")"

say "per-topic counts (Redis, all time)"
printf '%-28s %8s %12s %12s\n' topic posts reach engagement
$PY - "$cfg" "$out/redis.sock" <<'PYEOF'
import json, subprocess, sys
cfg = json.load(open(sys.argv[1]))
sock = sys.argv[2]
for team in cfg["teams"]:
    for t in team["topics"]:
        key = "esc:t:{%s/%s}" % (team["id"], t["id"])
        flat = subprocess.run(["redis-cli", "-s", sock, "--raw", "hgetall", key],
                              capture_output=True, text=True).stdout.split()
        h = dict(zip(flat[::2], flat[1::2]))
        print("%-28s %8s %12s %12s" % (team["id"] + "/" + t["id"], h.get("posts", 0),
                                       h.get("reach", 0), h.get("engagement", 0)))
PYEOF

say "alerts delivered to the webhook receiver"
for _ in $(seq 1 50); do
    [ -s "$out/webhooks.jsonl" ] && break
    sleep 0.1
done
if [ -s "$out/webhooks.jsonl" ]; then
    $PY - "$out/webhooks.jsonl" <<'PYEOF'
import json, sys, datetime as dt
for line in open(sys.argv[1]):
    req = json.loads(line)
    a = json.loads(req["body"])
    start = dt.datetime.fromtimestamp(a["window_start"] / 1000, dt.timezone.utc)
    print("%s  %s/%s spiked: %d posts vs %.1f expected (score %.1f) from %s UTC, signed=%s"
          % (req["path"], a["team"], a["topic"], a["observed"], a["expected"], a["score"],
             start.strftime("%Y-%m-%d %H:%M"),
             any(h.lower() == "x-escucha-signature" for h in req["headers"])))
PYEOF
else
    echo "(no alert was delivered)"
fi

say "weekly digests (ISO week 2026-W47, team time zone)"
# up.env holds what `escucha up` gave its children (ESC_REDIS_UNIX_SOCKET=.../redis.sock).
for team in gobernanza desarrollo; do
    (set -a; . "$out/up.env"; set +a
     exec "$bin/notifier/escucha-notifier" --config "$cfg" --digest "$team" --period 2026-W47) \
        2>>"$out/digest.log"
done

say "dashboard (escucha-api, started by escucha up over the same Redis)"
for _ in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $api_token" \
        "http://127.0.0.1:$api_port/api/v1/teams/gobernanza/topics" 2>/dev/null || true)
    [ "$code" = "200" ] && break
    sleep 0.1
done
echo "dashboard: http://127.0.0.1:$api_port/   token (admin, paste it at the prompt): $api_token"
echo "API check: GET /api/v1/teams/gobernanza/topics -> HTTP ${code:-none}"
status=
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    echo "The pipeline keeps running for the dashboard (live status: tail -f $out/status.log);"
    echo "press Ctrl-C to stop everything."
    # Ctrl-C reaches escucha up too (same process group): it stops the pipeline itself, and
    # this wait returns at once (status > 128) while it does.
    trap 'echo' INT
    wait "$up" 2>/dev/null && status=0 || { rc=$?; [ "$rc" -gt 128 ] || status=$rc; }
    trap - INT
    say "stopping the pipeline (escucha up: collector first, each stage drains)"
else
    say "stopping the pipeline (escucha up: collector first, each stage drains)"
    kill -INT "$up"
fi
if [ -z "$status" ]; then
    wait "$up" && status=0 || status=$?
fi
pids=("${pids[0]}")
if [ "$status" -ne 0 ]; then
    echo "escucha up exited $status: not every service stopped cleanly, see $out/*.log" >&2
    exit 1
fi
if [ "${code:-}" != "200" ]; then
    echo "the dashboard API did not answer: see $out/api.log" >&2
    exit 1
fi
echo "all services exited 0. Logs, the digest .eml files and the alert payloads are in $out/"
echo
echo "The gobernanza digest ($out/outbox/gobernanza-2026-W47.eml), body:"
tr -d '\r' <"$out/outbox/gobernanza-2026-W47.eml" |
    sed -n '/^Content-Transfer-Encoding: 8bit$/,/^--=_/p' | sed '1,2d;$d' | head -30
