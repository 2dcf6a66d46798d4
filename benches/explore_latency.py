#!/usr/bin/env python3
"""Times the explore example's server: N analyses of one drawn 7, one after another,
as a page sends them while you draw. Standard library only.

    cargo run --example explore -- models/mnist.bin --port 8080 &
    python3 benches/explore_latency.py 127.0.0.1:8080 300

Prints the server's own time per analysis (the `server_ms.total` it reports) and
the round trip seen by this client, median, p90 and max.
"""
import http.client
import json
import math
import sys
import time

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
host, port = address.split(":")

# A 7 drawn with an 18 px pen on the page's 280×280 pad, white on black.
W = H = 280
pad = bytearray(W * H)


def stroke(x0, y0, x1, y1, radius=9):
    steps = int(math.hypot(x1 - x0, y1 - y0)) + 1
    for i in range(steps + 1):
        cx, cy = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
        for y in range(int(cy - radius), int(cy + radius) + 1):
            for x in range(int(cx - radius), int(cx + radius) + 1):
                if 0 <= x < W and 0 <= y < H and (x - cx) ** 2 + (y - cy) ** 2 <= radius**2:
                    pad[y * W + x] = 255


stroke(70, 60, 200, 60)
stroke(200, 60, 120, 230)

connection = http.client.HTTPConnection(host, int(port))
round_trips, server, sizes = [], [], []
for _ in range(count):
    start = time.perf_counter()
    connection.request(
        "POST",
        f"/api/drawing?width={W}&height={H}",
        body=bytes(pad),
        headers={"Content-Type": "application/octet-stream"},
    )
    body = connection.getresponse().read()
    round_trips.append((time.perf_counter() - start) * 1e3)
    answer = json.loads(body)
    server.append(answer["server_ms"]["total"])
    sizes.append(len(body))


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


print(f"{count} analyses of a drawn 7 (predicted {answer['predicted']}), "
      f"{sum(sizes) / len(sizes) / 1024:.0f} KiB each")
for name, values in [("server", server), ("round trip", round_trips)]:
    print(f"{name:>10}: median {quantile(values, 0.5):.2f} ms, p90 {quantile(values, 0.9):.2f} ms, "
          f"max {max(values):.2f} ms")
