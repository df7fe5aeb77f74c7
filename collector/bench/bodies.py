"""Writes the collector benchmarks' request bodies into DIR, for each of
VIEWS views (default 64) numbered i = 0, 1, ...:

  single-i.json  one full heartbeat of view i
  batch-i.json   an SDK batch: view i's 20 heartbeats, shared fields in metadata
  cmcd-single-i.txt  one CMCD v2 event-mode report of view i (hls.js's keys)
  cmcd-batch-i.txt   20 reports of view i, one per line
  single.lines, batch.lines, cmcd-single.lines
                 the same bodies, one per line (oha -Z picks a random line
                 per request; a CMCD batch, being lines, has none: oha
                 sends cmcd-batch-0.txt)

A load generator that cycles through them spreads the records over the
topic's partitions and the collector's drain workers (each view goes to one),
as many viewers do. Timed now (the collector drops events older than an
hour) and written as compact JSON, as JSON.stringify in a browser SDK and the
loadgen send them.

  python3 collector/bench/bodies.py DIR [VIEWS]
"""
import json
import sys
import time

now = int(time.time() * 1000)


def event(i, seq, full=True):
    e = {"view_id": view(i), "seq": seq, "event": "heartbeat", "ts": now, "state": "playing",
         "watch_time_ms": 118000 + seq, "playing_time_ms": 112000, "startup_time_ms": 850,
         "rebuffer_count": 1, "rebuffer_duration_ms": 2400, "bitrate_kbps": 4500,
         "avg_bitrate_kbps": 4100, "dropped_frames": 12, "playhead_ms": 3600000,
         "play_requested": True}
    if full:
        e.update({"view_start": now - 120000, "viewer_id": "viewer-%d" % i, "video_id": "video-42",
                  "video_title": "Championship Final", "stream_type": "live",
                  "player_name": "web-player", "player_version": "3.2.1", "cdn": "cdn-a"})
    return e


def write(path, body):
    with open(path, "w") as f:
        f.write(compact(body))


def compact(body):
    return json.dumps(body, separators=(",", ":"))


def view(i):
    return "0b5c2f1e-7d3a-4c41-9e2b-%012d" % i


out = sys.argv[1]
lines = {"single": [], "batch": []}
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 64):
    single = event(i, 7)
    write("%s/single-%d.json" % (out, i), single)
    lines["single"].append(compact(single))
    meta = {"view_id": view(i), "view_start": now - 120000,
            "viewer_id": "viewer-%d" % i, "video_id": "video-42",
            "video_title": "Championship Final", "stream_type": "live",
            "player_name": "web-player", "player_version": "3.2.1", "cdn": "cdn-a"}
    batch = {"metadata": meta, "events": [event(i, 10 + n, full=False) for n in range(20)]}
    write("%s/batch-%d.json" % (out, i), batch)
    lines["batch"].append(compact(batch))


def report(i, sn):
    """One CMCD report as hls.js 1.7.4 sends it (`bl` and `br` lists, a
    36-character session id)."""
    return ('bl=(21900),br=(4500),cid="video-42",e=t,mtp=(71000),sf=h,sid="%s",sn=%d,st=l,sta=p,ts=%d,v=2'
            % (view(i), sn, now))


lines["cmcd-single"] = []
for i in range(int(sys.argv[2]) if len(sys.argv) > 2 else 64):
    with open("%s/cmcd-single-%d.txt" % (out, i), "w") as f:
        f.write(report(i, 7) + "\n")
    lines["cmcd-single"].append(report(i, 7))
    batch = "\n".join(report(i, 10 + n) for n in range(20)) + "\n"
    with open("%s/cmcd-batch-%d.txt" % (out, i), "w") as f:
        f.write(batch)
for kind, bodies in lines.items():
    with open("%s/%s.lines" % (out, kind), "w") as f:
        f.write("\n".join(bodies) + "\n")
