#!/usr/bin/python3
"""Writes deploy/grafana/escucha.json, the Grafana dashboard of escucha's Prometheus metrics.
Edit the panel table below and run `deploy/grafana/make_dashboard.py`; tests/deploy/
test_monitoring.py checks that the committed JSON is this script's output, that every query
parses (promtool) and that every metric it names is one the services register.

Import in Grafana: Dashboards -> New -> Import -> upload escucha.json -> pick the Prometheus
data source."""

import json
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "escucha.json")
RATE = "$__rate_interval"


def quantiles(metric, by, legend, qs=(0.5, 0.99)):
    """histogram_quantile targets of one escucha histogram, aggregated by `by` (besides le)."""
    keep = ", ".join(["le"] + ([by] if by else []))
    return [("histogram_quantile(%s, sum by (%s) (rate(%s_bucket[%s])))" % (q, keep, metric, RATE),
             "%s p%d" % (legend, round(q * 100))) for q in qs]


# (row title, [panel, ...]); a panel is (type, title, unit, description, [(expr, legend), ...])
ROWS = [
    ("Pipeline", [
        ("timeseries", "Posts per second by stage", "ops",
         "Posts through each stage. In steady state the stages carry the same rate; a gap "
         "means a backlog builds between them.",
         [("sum(rate(escucha_collector_posts_total[%s]))" % RATE, "collectors: sent"),
          ("sum(rate(escucha_broker_forwarded_total[%s]))" % RATE, "broker: forwarded"),
          ("sum(rate(escucha_aggregator_messages_total[%s]))" % RATE, "aggregator: received"),
          ("sum(rate(escucha_aggregator_flushed_posts_total[%s]))" % RATE,
           "aggregator: counted in Redis")]),
        ("timeseries", "Backlog", "short",
         "Posts the aggregator holds until Redis has counted them (bounded by "
         "max_pending_posts; at the bound the input pauses).",
         [("sum by (instance) (escucha_aggregator_pending_posts)", "pending {{instance}}"),
          ("max by (instance) (escucha_aggregator_input_paused)", "input paused {{instance}}")]),
        ("stat", "Dropped in the last hour (should be 0)", "short",
         "Counts Redis rejected (lost), frames that could not be read, alert deliveries "
         "dead-lettered or refused. Anything but 0 needs a look at the service's log.",
         [("sum(increase(escucha_aggregator_rejected_total[1h]))", "counts rejected by Redis"),
          ("sum(increase({__name__=~\"escucha_[a-z]+_invalid_total\"}[1h]))", "invalid frames"),
          ("sum(increase(escucha_notifier_dead_total[1h])) "
           "+ sum(increase(escucha_notifier_rejected_total[1h]))", "alerts not delivered")]),
    ]),
    ("Errors and backpressure", [
        ("timeseries", "Errors by kind", "ops",
         "Per-second rate of each kind of failure.",
         [("sum(rate(escucha_aggregator_invalid_total[%s]))" % RATE, "aggregator: invalid"),
          ("sum(rate(escucha_aggregator_flush_failures_total[%s]))" % RATE,
           "aggregator: flush failed"),
          ("sum(rate(escucha_aggregator_rejected_total[%s]))" % RATE,
           "aggregator: rejected by Redis"),
          ("sum(rate(escucha_notifier_invalid_total[%s]))" % RATE, "notifier: invalid"),
          ("sum(rate(escucha_notifier_retried_total[%s]))" % RATE,
           "notifier: delivery retried")]),
        ("timeseries", "Broker backpressure", "ops",
         "Turns per second on which no classifier could take a post. Sustained: add "
         "classifiers.",
         [("sum(rate(escucha_broker_blocked_total[%s]))" % RATE, "blocked")]),
        ("timeseries", "Re-deliveries not counted again", "ops",
         "Posts the aggregator recognised as already counted (exactly-once counting).",
         [("sum by (where) (rate(escucha_aggregator_duplicates_total[%s]))" % RATE,
           "{{where}}")]),
    ]),
    ("Latency", [
        ("timeseries", "Intake to counted in Redis, p50 / p99", "s",
         "From the collector taking a post in (ingested_at) to the aggregator's flush that put "
         "it in Redis, over all aggregators. The median follows flush_ms.",
         quantiles("escucha_aggregator_intake_latency_seconds", None, "intake \u2192 Redis")),
        ("timeseries", "Intake to classified, p50 / p99", "s",
         "From the collector's intake to a classifier finishing the post: the queues of the "
         "broker and the classifiers. Rising while intake to Redis is flat: add classifiers.",
         quantiles("escucha_classifier_intake_latency_seconds", None,
                   "intake \u2192 classified")),
        ("timeseries", "Drops by service (should be 0)", "short",
         "Every escucha_<service>_*_dropped_total / *_lost_total counter, per job and hour.",
         [("sum by (job) (increase({__name__=~\"escucha_[a-z]+_.*(dropped|lost)_total\"}[1h]))",
           "{{job}}")]),
    ]),
    ("Processing time", [
        ("timeseries", "Classifier time per post, p50 / p99", "s",
         "Decode, match, language ID, sentiment and encode of one post, per classifier "
         "instance.",
         quantiles("escucha_classifier_process_seconds", "instance", "{{instance}}")),
        ("timeseries", "Aggregator flush duration, p50 / p99", "s",
         "One flush of the pending counts to Redis (failed attempts included). Long flushes "
         "hold the aggregator's loop: watch top_flush_ms and Redis' SLOWLOG.",
         quantiles("escucha_aggregator_flush_duration_seconds", "instance", "{{instance}}")),
    ]),
    ("Sources", [
        ("timeseries", "Posts per second by source", "ops",
         "Posts each source handed to the bus.",
         [("sum by (source) (rate(escucha_collector_posts_total[%s]))" % RATE, "{{source}}")]),
        ("timeseries", "Fetches by source and result", "ops",
         "HTTP requests per source, and those that failed (errors) or were rate-limited (429).",
         [("sum by (source) (rate(escucha_collector_requests_total[%s]))" % RATE,
           "{{source}} requests"),
          ("sum by (source) (rate(escucha_collector_errors_total[%s]))" % RATE,
           "{{source}} errors"),
          ("sum by (source) (rate(escucha_collector_rate_limited_total[%s]))" % RATE,
           "{{source}} rate-limited")]),
        ("timeseries", "Rate-limit waits and duplicates per hour", "short",
         "429 answers (the source then waits for the platform's reset) and posts dropped as "
         "already sent (Redis dedupe), per source and hour.",
         [("sum by (source) (increase(escucha_collector_rate_limited_total[1h]))",
           "{{source}} 429s"),
          ("sum by (source) (increase(escucha_collector_duplicates_total[1h]))",
           "{{source}} duplicates")]),
        ("timeseries", "Fetch duration p99 by source", "s",
         "Duration of the HTTP requests of each source (failed ones included, not streams).",
         quantiles("escucha_collector_fetch_duration_seconds", "source", "{{source}}",
                   qs=(0.99,))),
    ]),
    ("Sinks", [
        ("timeseries", "Alert deliveries per hour", "short",
         "Deliveries to the teams' hooks (webhook, Slack, Teams, e-mail): accepted, retried, "
         "refused by the receiver (4xx) and dead-lettered after retry_max attempts.",
         [("sum(increase(escucha_notifier_delivered_total[1h]))", "delivered"),
          ("sum(increase(escucha_notifier_retried_total[1h]))", "retried"),
          ("sum(increase(escucha_notifier_rejected_total[1h]))", "rejected"),
          ("sum(increase(escucha_notifier_dead_total[1h]))", "dead-lettered")]),
        ("timeseries", "Alerts received and queued per hour", "short",
         "Alerts from the aggregators, deliveries queued in Redis, and those not queued "
         "because they were queued once already or fell in a hook's cooldown.",
         [("sum(increase(escucha_notifier_alerts_total[1h]))", "alerts received"),
          ("sum(increase(escucha_notifier_enqueued_total[1h]))", "queued"),
          ("sum(increase(escucha_notifier_duplicate_total[1h]))", "duplicate"),
          ("sum(increase(escucha_notifier_cooldown_total[1h]))", "cooldown")]),
        ("timeseries", "Notifier input paused", "short",
         "Times the notifier's in-memory inbox filled (Redis unreachable) and paused its input.",
         [("sum(increase(escucha_notifier_inbox_full_total[1h]))", "inbox full / h")]),
        ("timeseries", "Delivery duration p99 by sink", "s",
         "Duration of each delivery attempt (webhook, Slack, Teams, e-mail), per sink.",
         quantiles("escucha_notifier_delivery_duration_seconds", "sink", "{{sink}}",
                   qs=(0.99,))),
    ]),
    ("Redis and alerts", [
        ("timeseries", "Redis round trips", "ops",
         "Flush script calls the aggregator sends to Redis.",
         [("sum by (instance) (rate(escucha_aggregator_redis_calls_total[%s]))" % RATE,
           "{{instance}}")]),
        ("stat", "Redis reachable", "short",
         "1 while the aggregator's flushes reach Redis.",
         [("min(escucha_aggregator_redis_up)", "redis up")]),
        ("timeseries", "Spike alerts raised", "short",
         "Alerts the aggregator sent to the notifier, per hour.",
         [("sum(increase(escucha_aggregator_alerts_total[1h]))", "alerts / h")]),
    ]),
    ("Processes", [
        ("table", "Build info", "short",
         "Every escucha process Prometheus scrapes, with its version.",
         [("escucha_build_info", "")]),
        ("timeseries", "Uptime", "s",
         "Seconds since each process started; a drop is a restart.",
         [("escucha_up_seconds", "{{job}} {{instance}}")]),
        ("stat", "Targets up", "short",
         "Scrape targets answering /metrics, per job.",
         [("sum by (job) (up{job=~\"escucha-.*\"})", "{{job}}")]),
        ("stat", "Healthy (/healthz)", "short",
         "1 when every process of the job answers /healthz with 200 ok (escucha_healthy); 0: "
         "a process is degraded, /healthz gives the reason.",
         [("min by (job) (escucha_healthy)", "{{job}}")]),
    ]),
]

DS = {"type": "prometheus", "uid": "${datasource}"}


def panel(pid, kind, title, unit, desc, targets, x, y, w, h):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": desc,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr,
             "legendFormat": legend or "__auto"}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "stat":
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]
            if "Dropped" in title else
            [{"color": "red", "value": None}, {"color": "green", "value": 1}]}
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    if kind == "table":
        for t in p["targets"]:
            t["format"] = "table"
            t["instant"] = True
        p["transformations"] = [{"id": "organize", "options": {
            "excludeByName": {"Time": True, "Value": True, "__name__": True}}}]
    return p


def build():
    panels = []
    pid = 1
    y = 0
    for title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid += 1
        y += 1
        width = 24 // len(row)
        for i, (kind, ptitle, unit, desc, targets) in enumerate(row):
            panels.append(panel(pid, kind, ptitle, unit, desc, targets, i * width, y, width, 8))
            pid += 1
        y += 8
    return {
        "title": "escucha",
        "uid": "escucha-overview",
        "description": "escucha social listening pipeline: throughput, backlog, errors, Redis, "
                       "processes (docs/operations.md)",
        "tags": ["escucha"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{
            "name": "datasource", "label": "Prometheus", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
        }]},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    with open(OUT, "w") as f:
        f.write(render())
