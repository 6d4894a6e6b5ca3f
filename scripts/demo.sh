#!/usr/bin/env bash
# The escucha demo, end to end, on one machine: installs what is missing, builds, starts a
# private redis-server and a local webhook receiver on free ports, runs the broker, two
# classifiers, the aggregator and the notifier, replays the sample data through a collector,
# prints per-topic counts, the alert that was raised and where the weekly digest went, then
# stops everything cleanly. Everything it writes goes under out/demo/.
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
$PY examples/gen_posts.py --out "$out/posts.jsonl"
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

say "starting a private redis-server (unix socket $out/redis.sock)"
redis-server --port 0 --unixsocket "$out/redis.sock" --save "" --appendonly no --dir "$out" \
    --daemonize no --loglevel warning >"$out/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 100); do
    redis-cli -s "$out/redis.sock" ping >/dev/null 2>&1 && break
    sleep 0.1
done

say "starting a local webhook receiver"
$PY tests/support/webhook_sink.py --out "$out/webhooks.jsonl" >"$out/webhook.port" 2>"$out/webhook.log" &
pids+=($!)
for _ in $(seq 1 100); do
    [ -s "$out/webhook.port" ] && break
    sleep 0.1
done
hook_port=$(head -n1 "$out/webhook.port")

# The demo config, with this run's ports and paths.
$PY - "$out" "$hook_port" "$(free_port)" "$(free_port)" "$(free_port)" "$(free_port)" <<'PYEOF'
import json, sys
out, hook, p1, p2, p3, p4 = sys.argv[1:]
cfg = json.load(open("examples/escucha.json"))
cfg["redis"] = {"unix_socket": out + "/redis.sock", "prefix": "esc"}
cfg["bus"] = {"collect": "tcp://127.0.0.1:" + p1, "classify": "tcp://127.0.0.1:" + p2,
              "aggregate": "tcp://127.0.0.1:" + p3, "notify": "tcp://127.0.0.1:" + p4}
cfg["sources"][0]["path"] = out + "/posts.jsonl"
cfg["notifier"]["outbox"] = out + "/outbox"
for team in cfg["teams"]:
    for hook_cfg in team.get("webhooks", []):
        hook_cfg["url"] = "http://127.0.0.1:%s/hooks/%s" % (hook, team["id"])
json.dump(cfg, open(out + "/escucha.json", "w"), ensure_ascii=False, indent=1)
PYEOF
cfg="$out/escucha.json"
export ESC_HOOK_SECRET_GOBERNANZA="demo-secret-$$"

say "starting the pipeline: broker, 2 classifiers, aggregator, notifier"
bin="$build"
"$bin/notifier/escucha-notifier" --config "$cfg" 2>"$out/notifier.log" &
ntf=$!
"$bin/aggregator/escucha-aggregator" --config "$cfg" 2>"$out/aggregator.log" &
agg=$!
"$bin/classifier/escucha-classifier" --config "$cfg" 2>"$out/classifier1.log" &
cls1=$!
"$bin/classifier/escucha-classifier" --config "$cfg" 2>"$out/classifier2.log" &
cls2=$!
"$bin/broker/escucha-broker" --config "$cfg" 2>"$out/broker.log" &
brk=$!
pids+=($brk $cls1 $cls2 $agg $ntf)

say "replaying the sample data through a collector"
t0=$(date +%s%N)
"$bin/collector/escucha-collector" --config "$cfg" --once 2>"$out/collector.log"
for _ in $(seq 1 600); do
    done_n=$(redis-cli -s "$out/redis.sock" get esc:agg:processed)
    [ "${done_n:-0}" -ge "$lines" ] && break
    sleep 0.1
done
t1=$(date +%s%N)
echo "processed ${done_n:-0} posts in $(( (t1 - t0) / 1000000 )) ms"

say "per-topic counts (Redis, all time)"
printf '%-28s %8s %12s %12s\n' topic posts reach engagement
$PY - "$cfg" <<'PYEOF'
import json, subprocess, sys
cfg = json.load(open(sys.argv[1]))
sock = cfg["redis"]["unix_socket"]
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
for team in gobernanza desarrollo; do
    "$bin/notifier/escucha-notifier" --config "$cfg" --digest "$team" --period 2026-W47 2>>"$out/notifier.log"
done

say "dashboard (escucha-api over the same Redis)"
newtok=$("$bin/api/escucha-api" --new-token)
api_token=$(awk '/^token:/{print $2}' <<<"$newtok")
api_port=$(free_port)
$PY - "$cfg" "$(awk '/^sha256:/{print $2}' <<<"$newtok")" "$api_port" "$build/web/dist" <<'PYEOF'
import json, sys
path, digest, port, web = sys.argv[1:]
cfg = json.load(open(path))
cfg["api"] = {"listen": "127.0.0.1:" + port, "web_root": web,
              "tokens": [{"name": "demo", "team": "*", "role": "admin", "sha256": digest}]}
json.dump(cfg, open(path, "w"), ensure_ascii=False, indent=1)
PYEOF
"$bin/api/escucha-api" --config "$cfg" 2>"$out/api.log" &
api=$!
pids+=($api)
for _ in $(seq 1 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $api_token" \
        "http://127.0.0.1:$api_port/api/v1/teams/gobernanza/topics" 2>/dev/null || true)
    [ "$code" = "200" ] && break
    sleep 0.1
done
echo "dashboard: http://127.0.0.1:$api_port/   token (admin, paste it at the prompt): $api_token"
echo "API check: GET /api/v1/teams/gobernanza/topics -> HTTP ${code:-none}"
if [ -t 0 ] && [ -z "${CI:-}" ]; then
    echo "The pipeline keeps running for the dashboard; press Ctrl-C to stop everything."
    trap 'echo' INT
    wait "$api" 2>/dev/null || true
    trap - INT
fi

say "stopping the pipeline (upstream first, each drains)"
status=0
for p in $brk $cls1 $cls2 $agg $ntf $api; do
    kill -TERM "$p" 2>/dev/null || true
    if ! wait "$p"; then
        status=1
    fi
done
pids=("${pids[0]}")
kill -TERM "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
    echo "a service did not exit cleanly: see $out/*.log" >&2
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
