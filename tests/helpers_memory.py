"""Peak memory of a process, measured so that it cannot be inherited.

``ru_maxrss`` is the wrong gauge for a child the tests start: Linux carries the high-water mark of
the process that forked it across ``exec`` into the child's ``ru_maxrss``, so a child of a pytest
process that grew to 1.5 GB reports at least 1.5 GB. ``VmHWM`` in /proc/self/status belongs to the
address space, which ``exec`` replaces, so it counts the child alone; in a long-lived process it is
reset by writing 5 to /proc/self/clear_refs (Linux 4.0+), so a bound on growth can fail.
"""

from __future__ import annotations

# For child scripts given as source text (python -c): defines peak_rss_bytes().
PEAK_SOURCE = ("def peak_rss_bytes():\n"
               "    with open('/proc/self/status') as status:\n"
               "        return next(int(l.split()[1]) * 1024 for l in status if l.startswith('VmHWM:'))\n")
exec(PEAK_SOURCE)


def reset_peak() -> None:
    """Start this process's VmHWM again from its current resident set."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
