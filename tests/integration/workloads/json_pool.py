#!/usr/bin/python3
"""multiprocessing.Pool(8) mapping TASKS tasks; each task reads state.json,
increments its "count" field and writes the file back.

Usage: json_pool.py TASKS (in the directory of state.json). A task that
fails (say, it read the file while another truncated it) makes pool.map
raise: the program then exits with a traceback.
"""
import json
import sys
from multiprocessing import Pool


def bump(_):
    with open("state.json") as f:
        state = json.load(f)
    state["count"] += 1
    with open("state.json", "w") as f:
        json.dump(state, f)


if __name__ == "__main__":
    tasks = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with Pool(8) as pool:
        pool.map(bump, range(tasks), chunksize=1)
