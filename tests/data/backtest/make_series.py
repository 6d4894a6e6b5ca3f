"""Writes the synthetic series used by aggregator/backtest_test.c and the examples in
docs/aggregator.md. Deterministic (seeded), stdlib only: /usr/bin/python3 make_series.py

  burst-1min.csv   1 day at 1-minute steps, ~3 posts/min, a burst of +20/min at 16:00-16:15
  daily-5min.csv   4 days at 5-minute steps with a busy 12:00-14:00 every day, a burst at
                   03:00-03:10 on day 3 (2026-11-19); Unix-second timestamps
  weekly-1h.csv    5 weeks at 1-hour steps with a day/night cycle, Mondays 4x busier, a burst
                   on Wednesday 2026-12-16 at 03:00
"""

import datetime as dt
import math
import os
import random

T0 = dt.datetime(2026, 11, 16, tzinfo=dt.timezone.utc)  # a Monday
HERE = os.path.dirname(os.path.abspath(__file__))


def poisson(rng, lam):
    if lam > 30:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        k += 1
        p *= rng.random()
        if p <= limit:
            return k - 1


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(name, header, rows):
    with open(os.path.join(HERE, name), "w") as f:
        if header:
            f.write(header + "\n")
        for ts, v in rows:
            f.write("%s,%d\n" % (ts, v))


def burst_1min():
    rng = random.Random(1)
    rows = []
    for m in range(24 * 60):
        lam = 3.0 + (20.0 if 16 * 60 <= m < 16 * 60 + 15 else 0.0)
        rows.append((iso(T0 + dt.timedelta(minutes=m)), poisson(rng, lam)))
    write("burst-1min.csv", "timestamp,value", rows)


def daily_5min():
    rng = random.Random(2)
    rows = []
    for s in range(4 * 288):
        t = T0 + dt.timedelta(minutes=5 * s)
        lam = 40.0 if 12 <= t.hour < 14 else 2.0
        if t.day == 19 and t.hour == 3 and t.minute < 10:
            lam += 60.0
        rows.append((str(int(t.timestamp())), poisson(rng, lam)))
    write("daily-5min.csv", None, rows)


def weekly_1h():
    rng = random.Random(3)
    rows = []
    for h in range(5 * 168):
        t = T0 + dt.timedelta(hours=h)
        lam = 30.0 if 8 <= t.hour < 22 else 6.0
        if t.weekday() == 0:
            lam *= 4.0
        if t.day == 16 and t.month == 12 and t.hour == 3:
            lam += 200.0
        rows.append((iso(t), poisson(rng, lam)))
    write("weekly-1h.csv", "timestamp,value", rows)


if __name__ == "__main__":
    burst_1min()
    daily_5min()
    weekly_1h()
