"""Where a training step's time goes: XLA ops of the bare jitted step, aggregated per op.

Profiles ``--steps`` steps of a ``benchmarks/train_speed.py`` model with ``jax.profiler``, in a
process started with a job's environment and runtime settings, and prints the step time, the
busy time of each XLA thread, the time per op kind (fusions without their number) and the
slowest ops. Op names match the compiled HLO, written next to the trace with ``--hlo``::

    python benchmarks/profile_step.py --model mini [--steps 20] [--plain] [--hlo]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from xpm_train.training import runtime

if not os.environ.get(runtime.EXPORTED_MARK) and runtime.export_job_environment():
    os.execv(sys.executable, [sys.executable, *sys.argv])  # glibc reads them at start-up
SETTINGS = runtime.configure(None)

import jax  # noqa: E402  (after the runtime settings, as in a job)
import jax.numpy as jnp  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from bare_jax import bare_step  # noqa: E402
from bench_models import MODELS  # noqa: E402

from xpm_train.models import fast_ops  # noqa: E402

#: Events that wrap others (executor, waits, Python): left out of the per-op figures.
WRAPPERS = ("ThunkExecutor", "SlinkyThreadPool", "block_until", "try_to_block", "Pjit", "$")


def op_times(trace: Path, steps: int) -> tuple[dict[str, float], collections.Counter[str]]:
    """Busy milliseconds per step of each thread, and microseconds per step of each op."""
    xplane = max(trace.rglob("*.xplane.pb"), key=lambda path: path.stat().st_mtime)
    data = jax.profiler.ProfileData.from_file(str(xplane))
    busy: collections.Counter[str] = collections.Counter()
    ops: collections.Counter[str] = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                if not any(wrapper in event.name for wrapper in WRAPPERS):
                    ops[event.name] += event.duration_ns / steps / 1e3
                    busy[line.name] += event.duration_ns / steps / 1e6
    return dict(busy), ops


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="mini")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--plain", action="store_true", help="the model without fast ops")
    parser.add_argument("--hlo", action="store_true", help="write the compiled HLO too")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    bench = MODELS[args.model]
    print(SETTINGS.describe())
    with fast_ops.use_fast_ops(not args.plain):
        step, params, opt_state = bare_step(bench.make_model(), bench.transform(10**6))
        tokens = jnp.asarray(bench.tokens(0))
        folder = Path(tempfile.mkdtemp(prefix=f"profile-{args.model}-"))
        if args.hlo:
            compiled = step.lower(params, opt_state, tokens).compile()
            (folder / "step.hlo.txt").write_text(compiled.as_text())
        for _ in range(3):
            params, opt_state, loss = step(params, opt_state, tokens)
        jax.block_until_ready(loss)
        began = time.perf_counter()
        with jax.profiler.trace(str(folder / "trace")):
            for _ in range(args.steps):
                params, opt_state, loss = step(params, opt_state, tokens)
            jax.block_until_ready(loss)
        seconds = (time.perf_counter() - began) / args.steps
    busy, ops = op_times(folder / "trace", args.steps)
    tokens_per_s = bench.batch * bench.block / seconds
    print(f"step {1e3 * seconds:.1f} ms ({tokens_per_s:.0f} tok/s, profiled)")
    print("busy ms per step:", {name: round(ms, 1) for name, ms in busy.items() if ms > 0.1})
    kinds: collections.Counter[str] = collections.Counter()
    for name, micros in ops.items():
        kinds[re.sub(r"\.\d+$", "", name)] += micros
    print("\nus per step by op kind (summed over threads)")
    for name, micros in kinds.most_common(args.top):
        print(f"{micros:12.0f}  {name}")
    print("\nslowest ops, us per step")
    for name, micros in ops.most_common(args.top):
        print(f"{micros:12.0f}  {name}")
    print(f"\ntrace{' and HLO' if args.hlo else ''}: {folder}")


if __name__ == "__main__":
    main()
