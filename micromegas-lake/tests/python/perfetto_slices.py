"""Decodes a Perfetto trace with Perfetto's own protobuf schema (PyPI `perfetto`) and prints
its tracks, slices (rebuilt from begin/end events, with depth and parent) and instants as JSON.

Usage: perfetto_slices.py FILE.pftrace
"""

import json
import sys

from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent


def main():
    trace = Trace()
    with open(sys.argv[1], "rb") as f:
        trace.ParseFromString(f.read())
    tracks, slices, instants = {}, [], []
    open_slices = {}  # track uuid -> stack of slice indexes
    last_time = {}
    for packet in trace.packet:
        if packet.HasField("track_descriptor"):
            d = packet.track_descriptor
            tracks[d.uuid] = {
                "parent": d.parent_uuid if d.HasField("parent_uuid") else None,
                "process": d.process.process_name if d.HasField("process") else None,
                "thread": d.thread.thread_name if d.HasField("thread") else None,
                "name": d.name or None,
            }
            continue
        if not packet.HasField("track_event"):
            continue
        e, t = packet.track_event, packet.timestamp
        assert e.track_uuid in tracks, f"event on undeclared track {e.track_uuid}"
        assert t >= last_time.get(e.track_uuid, 0), "events of a track out of order"
        last_time[e.track_uuid] = t
        stack = open_slices.setdefault(e.track_uuid, [])
        annotations = {a.name: a.string_value for a in e.debug_annotations}
        if e.type == TrackEvent.TYPE_SLICE_BEGIN:
            slices.append(
                {
                    "track": e.track_uuid,
                    "name": e.name,
                    "category": list(e.categories),
                    "start": t,
                    "end": None,
                    "depth": len(stack),
                    "parent": slices[stack[-1]]["span_id"] if stack else None,
                    "span_id": annotations.get("span_id"),
                    "annotations": annotations,
                }
            )
            stack.append(len(slices) - 1)
        elif e.type == TrackEvent.TYPE_SLICE_END:
            assert stack, "slice end without a begin"
            slices[stack.pop()]["end"] = t
        elif e.type == TrackEvent.TYPE_INSTANT:
            instants.append({"track": e.track_uuid, "name": e.name, "time": t, "annotations": annotations})
    assert all(not s for s in open_slices.values()), "slices left open"
    print(json.dumps({"tracks": {str(k): v for k, v in tracks.items()}, "slices": slices, "instants": instants}))


if __name__ == "__main__":
    main()
