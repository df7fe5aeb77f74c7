"""Writes the collector benchmarks' request bodies into DIR:

  single.json  one full heartbeat
  batch.json   an SDK batch: one view's 20 heartbeats, shared fields in metadata

Timed now (the collector drops events older than an hour) and written as
compact JSON, as JSON.stringify in a browser SDK and the loadgen send them.

  python3 collector/bench/bodies.py DIR
"""
import json
import sys
import time

now = int(time.time() * 1000)


def event(view, seq, full=True):
    e = {"view_id": view, "seq": seq, "event": "heartbeat", "ts": now, "state": "playing",
         "watch_time_ms": 118000 + seq, "playing_time_ms": 112000, "startup_time_ms": 850,
         "rebuffer_count": 1, "rebuffer_duration_ms": 2400, "bitrate_kbps": 4500,
         "avg_bitrate_kbps": 4100, "dropped_frames": 12, "playhead_ms": 3600000,
         "play_requested": True}
    if full:
        e.update({"view_start": now - 120000, "viewer_id": "viewer-1", "video_id": "video-42",
                  "video_title": "Championship Final", "stream_type": "live",
                  "player_name": "web-player", "player_version": "3.2.1", "cdn": "cdn-a"})
    return e


def write(path, body):
    with open(path, "w") as f:
        json.dump(body, f, separators=(",", ":"))


out = sys.argv[1]
write(out + "/single.json", event("0b5c2f1e-7d3a-4c41-9e2b-000000000001", 7))
meta = {"view_id": "0b5c2f1e-7d3a-4c41-9e2b-000000000002", "view_start": now - 120000,
        "viewer_id": "viewer-2", "video_id": "video-42", "video_title": "Championship Final",
        "stream_type": "live", "player_name": "web-player", "player_version": "3.2.1", "cdn": "cdn-a"}
write(out + "/batch.json",
      {"metadata": meta, "events": [event(meta["view_id"], 10 + i, full=False) for i in range(20)]})
