"""Where a loaded SavedModel signature's time goes: TensorFlow ops by self time,
from a `tf.profiler` trace (imported by `real_size_serving.py`).

The host plane of the trace has one line per thread; an op kernel's event is
named `node_name:OpType`; the executor's own events have other names
(`ExecutorState::Process` schedules and runs a kernel on a worker thread: its
self time is scheduling; the caller's `Run`-like events wait for the workers).
An event's self time is its duration less the events nested in it on the same
thread.
"""

import glob
import os
import time


def profile_top_ops(served, request, logdir, calls=2, top=12):
    """Where `calls` requests spend their time, from a `tf.profiler` trace: the
    TensorFlow ops (events named `name:Type`) by self time, and the executor's
    own events (`Process`, `Run`, ...: scheduling, not kernels)."""

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    served.signatures["generate"](**request)
    start = time.perf_counter()
    tf.profiler.experimental.start(logdir)
    for _ in range(calls):
        served.signatures["generate"](**request)
    tf.profiler.experimental.stop()
    wall = (time.perf_counter() - start) / calls
    path = sorted(glob.glob(os.path.join(logdir, "plugins/profile/*/*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    ops, executor = {}, {}
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for name, self_ps in _self_times(line.events, names):
                is_op = name.count(":") == 1  # Not `ExecutorState::Process`.
                table, key = (ops, name.split(":")[1]) if is_op else (executor, name)
                total, count = table.get(key, (0, 0))
                table[key] = (total + self_ps, count + 1)

    def ranked(table):
        return [
            {
                "name": key,
                "self_ms_per_call": round(ps / 1e9 / calls, 2),
                "events_per_call": count // calls,
            }
            for key, (ps, count) in sorted(table.items(), key=lambda item: -item[1][0])[:top]
        ]

    return {
        "trace": path,
        "calls": calls,
        "wall_ms_per_call_profiled": round(wall * 1000, 1),
        "ops_self_ms_per_call": round(sum(ps for ps, _ in ops.values()) / 1e9 / calls, 1),
        "op_events_per_call": sum(count for _, count in ops.values()) // calls,
        "executor_self_ms_per_call": round(sum(ps for ps, _ in executor.values()) / 1e9 / calls, 1),
        "top_ops": ranked(ops),
        "top_executor_events": ranked(executor),
    }


def _self_times(events, names):
    """`(name, self picoseconds)` of each event of one thread: its duration less
    that of the events nested in it."""
    records, stack = [], []
    for event in sorted(events, key=lambda e: (e.offset_ps, -e.duration_ps)):
        while stack and stack[-1][1] <= event.offset_ps:
            stack.pop()
        record = [names.get(event.metadata_id, "?"), event.offset_ps + event.duration_ps]
        record.append(event.duration_ps)
        if stack:
            stack[-1][2] -= event.duration_ps
        stack.append(record)
        records.append(record)
    return [(name, self_ps) for name, _, self_ps in records]
