"""`make soak`: the chaos driver for several minutes, cycling the IdP faults.

    SOAK_MINUTES=5 make soak          # default 5; SOAK_PHASE_SECONDS=15, SOAK_WORKERS=8

The same traffic and checks as tests/e2e/test_chaos.py (see driver.py),
through the real Envoy (--concurrency 2) and the real IdP, whose faults go
round: ok, slow (past idp_timeout), down, 500, HTML, empty keys, truncated,
garbage, ok, ... Every minute it prints Envoy's memory (VmRSS/VmHWM from
/proc/<pid>/status, server.memory_allocated and server.memory_heap_size),
the requests of that minute, errors by class and leaks to the upstream; at
the end the summary tables and the memory at start, every minute and end.

Memory is reported, never judged. The soak fails (exit 1) on any request
that reached the upstream without valid credentials, on any wasm VM crash
or reload, and on any other broken contract of the driver (an undefined 5xx,
valid credentials refused). Logs: tests/artifacts/soak/.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from driver import FAULTS, Phase, chaos_stack, format_memory, run_chaos, table  # noqa: E402


def phases_for(minutes: float, phase_seconds: float) -> list[Phase]:
    cycle = [("ok", 0)] + FAULTS
    count = max(2, math.ceil(minutes * 60 / phase_seconds))
    out = []
    for i in range(count - 1):
        mode, delay = cycle[i % len(cycle)]
        out.append(Phase(f"{i:03d}-{mode}", mode, delay, min_seconds=phase_seconds, max_seconds=phase_seconds * 4, coverage=1))
    out.append(Phase(f"{count - 1:03d}-ok", "ok", 0, min_seconds=phase_seconds, max_seconds=phase_seconds * 4, coverage=1))
    return out


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "5") or 5)
    phase_seconds = float(os.environ.get("SOAK_PHASE_SECONDS", "15") or 15)
    workers = int(os.environ.get("SOAK_WORKERS", "8") or 8)
    seed = int(os.environ.get("SOAK_SEED", "7") or 7)
    phases = phases_for(minutes, phase_seconds)
    print(f"soak: {minutes:g} min, {len(phases)} phases of {phase_seconds:g} s, {workers} workers, seed {seed}", flush=True)

    stack = chaos_stack("soak")
    memory_rows: list[list[str]] = [["minute", "RSS MiB", "peak RSS MiB", "allocated MiB", "heap MiB", "requests", "errors", "leaks"]]
    t0 = time.monotonic()

    def mem_row(label: str, mem: dict, requests: str = "", errors: str = "", leaks: str = "") -> list[str]:
        return [label,
                f"{mem.get('VmRSS', 0) / 1024:.1f}", f"{mem.get('VmHWM', 0) / 1024:.1f}",
                f"{mem.get('server.memory_allocated', 0) / 1048576:.1f}",
                f"{mem.get('server.memory_heap_size', 0) / 1048576:.1f}", requests, errors, leaks]

    def every_minute(n, ledger, auditor, watch) -> None:
        try:
            auditor.poll()
        except Exception as exc:  # noqa: BLE001 - the final audit reports it
            print(f"soak: audit poll failed: {exc!r}")
        minute = ledger.take_minute()
        leaks, auditor.minute_leaks = auditor.minute_leaks, 0
        mem = watch.memory()
        errors = {k.removeprefix("errors:"): v for k, v in minute.items() if k.startswith("errors:")}
        err_text = ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"
        label = f"minute {n}" if n != "last" else "last part-minute"
        print(f"soak: {label} ({time.monotonic() - t0:.0f} s): {format_memory(mem)}; "
              f"requests {minute.get('requests', 0)}, errors {err_text}, upstream leaks {leaks}", flush=True)
        memory_rows.append(mem_row(n, mem, str(minute.get("requests", 0)), str(sum(errors.values())), str(leaks)))

    try:
        stack.wait_filter_ready(30)
        result = run_chaos(stack, phases, workers=workers, seed=seed, every_minute=every_minute,
                           log=lambda line: print(line, flush=True))
    finally:
        stack.stop()

    start_mem = dict(result.memory).get("start", {})
    end_mem = dict(result.memory).get("end", {})
    memory_rows.insert(1, mem_row("start", start_mem))
    memory_rows.append(mem_row("end", end_mem))
    summary = result.summary()
    mem_table = table(memory_rows)
    growth = ""
    if start_mem.get("VmRSS") and end_mem.get("VmRSS"):
        growth = (f"Envoy RSS {start_mem['VmRSS'] / 1024:.1f} -> {end_mem['VmRSS'] / 1024:.1f} MiB, "
                  f"allocated {start_mem.get('server.memory_allocated', 0) / 1048576:.1f} -> "
                  f"{end_mem.get('server.memory_allocated', 0) / 1048576:.1f} MiB (reported, not judged)")
    report = f"{summary}\n\nEnvoy memory per minute\n{mem_table}\n{growth}\n"
    problems = result.problems()
    if problems:
        report += f"\n{len(problems)} problems:\n" + "\n".join(problems[:200]) + "\n"
    (stack.artifacts / "soak-summary.txt").write_text(report)
    print(report)
    leaks = result.auditor.leaks
    crash = result.watch_problems
    if leaks or crash or problems:
        print(f"soak: FAILED: {len(leaks)} upstream leaks, {len(crash)} VM/driver problems, {len(problems)} problems in all "
              f"(details in {stack.artifacts / 'soak-summary.txt'})")
        return 1
    print(f"soak: OK ({result.seconds:.0f} s, {sum(result.ledger.counts.values())} requests, "
          f"{result.auditor.seen} upstream requests audited, no leak, no VM crash)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
