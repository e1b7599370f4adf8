#!/usr/bin/env python3
"""Sends N cumulative OTLP/JSON histogram points (default buckets of the Python SDK) to a
collector: 200 series (route x status), one point per series per 'minute'."""
import json, random, sys, urllib.request
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
bounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000]
series = [(f"/r{r}", str(s)) for r in range(40) for s in (200, 201, 404, 500, 503)]
state = {k: [0] * (len(bounds) + 1) for k in series}
t0 = 1764979200_000_000_000
rng = random.Random(7)
sent = 0
minute = 0
while sent < N:
    points = []
    for (route, status) in series:
        counts = state[(route, status)]
        for _ in range(20):
            v = rng.lognormvariate(3.5, 1.0)
            i = next((j for j, b in enumerate(bounds) if v <= b), len(bounds))
            counts[i] += 1
        points.append({
            "startTimeUnixNano": str(t0), "timeUnixNano": str(t0 + (minute + 1) * 60_000_000_000),
            "count": str(sum(counts)), "sum": 1.0, "bucketCounts": [str(c) for c in counts],
            "explicitBounds": bounds, "min": 0.1, "max": 20000.0,
            "attributes": [{"key": "http.route", "value": {"stringValue": route}},
                           {"key": "http.status", "value": {"stringValue": status}}]})
    body = {"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "histsvc"}}]},
            "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [{"name": "http.server.duration", "unit": "ms",
            "histogram": {"aggregationTemporality": 2, "dataPoints": points}}]}]}]}
    req = urllib.request.Request("http://127.0.0.1:4318/v1/metrics", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()
    sent += len(points)
    minute += 1
print("sent", sent, "points over", minute, "minutes")
