"""Load the ``recommend`` ensemble with NVIDIA's ``perf_analyzer``: closed loop (a fixed number of requests in
flight) and open loop (an offered request rate), over gRPC and HTTP, with real users' histories as inputs.

perf_analyzer is the load generator of Triton's client SDK. Without the SDK image, :func:`install` takes it from
the ``tritonclient`` 2.51 wheel (the release of the server in ``nvidia-pytriton``) and the CUDA runtime it links
against from the ``nvidia-cuda-runtime-cu12`` wheel (loaded, never used: no GPU is needed); it also needs Debian's
``libb64-0d``. The tool runs on the same host as the server and shares its cores, which the JSON records.

Each load point is one perf_analyzer run that repeats measurement windows until p99 latency and throughput are
stable. (perf_analyzer's ``--request-count`` is not offered: it rounds the run up to whole seconds, so 50
requests answered in 0.4 s read as 50 infer/s.) Without ``--rates``, the open-loop points offer a quarter, half
and three quarters of the best closed-loop throughput of the protocol, so they stay below capacity on any
machine. Writes ``benchmarks/results/perf_analyzer.{json,png}``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.layout import PreparedLayout

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
TRITONCLIENT = "tritonclient==2.51.0"
# CUDA 12.6: what Triton 2.51 (NGC 24.10) was built with; any 12.x wheel has libcudart.so.12.
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12==12.6.77"
WHEEL_MEMBERS = {TRITONCLIENT: ("tritonclient-2.51.0.data/data/bin/perf_analyzer", "bin/perf_analyzer"),
                 CUDA_RUNTIME: ("nvidia/cuda_runtime/lib/libcudart.so.12", "lib/libcudart.so.12")}
PROTOCOLS = ("grpc", "http")
INPUTS = ("item_seq", "exclude", "limit")
RATE_FRACTIONS = (0.25, 0.5, 0.75)
NOT_KEEPING_UP = "not able to keep up"
UNSTABLE = ("Failed to obtain stable measurement", "No valid requests recorded", "not stabilizing")

_LOAD_COLUMNS = {"Concurrency": ("concurrency", int), "Request Rate": ("request_rate", float),
                 "Inferences/Second": ("throughput", float)}
_MICROSECOND_COLUMNS = {"Client Send": "client_send_ms", "Network+Server Send/Recv": "network_server_ms",
                        "Server Queue": "server_queue_ms", "Server Compute Input": "server_compute_input_ms",
                        "Server Compute Infer": "server_compute_infer_ms",
                        "Server Compute Output": "server_compute_output_ms", "Client Recv": "client_recv_ms",
                        "p50 latency": "p50_ms", "p90 latency": "p90_ms", "p95 latency": "p95_ms",
                        "p99 latency": "p99_ms", "Avg latency": "mean_ms",
                        "request/response": "client_request_response_ms", "response wait": "client_wait_ms"}
_MODEL_LINE = re.compile(r"^\s*([\w.-]+), version: \S+\s*$")
_LATENCY_LINE = re.compile(r"Avg request latency: (\d+) usec \((.*)\)")
_LATENCY_PART = re.compile(r"([a-z ]+?) (\d+) usec")


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer could not be installed, or a measurement failed; ``output`` holds what it printed."""

    def __init__(self, message: str, command: list[str] | None = None, output: str = ""):
        super().__init__(message)
        self.command = command
        self.output = output


def environment(perf_analyzer: Path) -> dict[str, str]:
    """This process's environment with the CUDA runtime installed beside ``perf_analyzer`` (``../lib``) first
    on ``LD_LIBRARY_PATH``; an SDK image's binary finds its own and is unaffected."""
    env = dict(os.environ)
    lib = Path(perf_analyzer).resolve().parent.parent / "lib"
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib), *[p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]])
    return env


def version(perf_analyzer: Path) -> str:
    """perf_analyzer's version (``2.51.0``); raises :class:`PerfAnalyzerError` saying what is missing if the
    binary does not run."""
    try:
        done = subprocess.run([str(perf_analyzer), "--version"], capture_output=True, text=True, timeout=30,
                              env=environment(perf_analyzer))
    except OSError as exc:
        raise PerfAnalyzerError(f"cannot run {perf_analyzer}: {exc}") from exc
    output = done.stdout + done.stderr
    if done.returncode != 0:
        if "libb64" in output:
            raise PerfAnalyzerError("perf_analyzer needs Debian's libb64: apt-get install -y libb64-0d", output=output)
        raise PerfAnalyzerError(f"{perf_analyzer} does not run (exit code {done.returncode}):\n{output}",
                                output=output)
    found = re.search(r"Version (\S+)", output)
    return found[1] if found else output.strip()


def install(tools_dir: Path) -> Path:
    """perf_analyzer under ``tools_dir/perf_analyzer/bin``, its CUDA runtime under ``.../lib``; the wheels are
    downloaded into ``tools_dir/wheels`` only when missing. Returns the binary, checked to run.

    Examples
    --------
    >>> binary = install(Path("build/tools"))  # doctest: +SKIP
    >>> version(binary)  # doctest: +SKIP
    '2.51.0'
    """
    tools_dir = Path(tools_dir)
    root = tools_dir / "perf_analyzer"
    for requirement, (member, target) in WHEEL_MEMBERS.items():
        if not (root / target).exists():
            _extract(_wheel(requirement, tools_dir / "wheels"), member, root / target)
    binary = root / "bin" / "perf_analyzer"
    binary.chmod(0o755)
    version(binary)
    return binary


def _wheel(requirement: str, folder: Path) -> Path:
    name, release = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{release}-*.whl"
    found = sorted(folder.glob(pattern))
    if not found:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest",
                   str(folder), requirement]
        done = subprocess.run(command, capture_output=True, text=True)
        found = sorted(folder.glob(pattern))
        if done.returncode != 0 or not found:
            raise PerfAnalyzerError(f"could not download {requirement}:\n{done.stdout}{done.stderr}",
                                    command, done.stdout + done.stderr)
    return found[-1]


def _extract(wheel: Path, member: str, target: Path) -> None:
    """Through a temporary name, so an interrupted install is never taken for a finished one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(wheel) as archive:
        try:
            partial.write_bytes(archive.read(member))
        except KeyError as exc:
            raise PerfAnalyzerError(f"{wheel.name} has no {member}") from exc
    partial.replace(target)


def max_length(repository: Path) -> int:
    """The ranker's window (``item_seq`` width) of the newest version of a built repository."""
    from recstack.ensemble.funnel import serving_folder
    from recstack.ensemble.triton_models import FUNNEL_FILE

    return int(json.loads((serving_folder(Path(repository), "retrieve") / FUNNEL_FILE).read_text())["max_length"])


def write_input_data(histories, path: Path, seq_len: int, limit: int = 20, exclude=None) -> Path:
    """perf_analyzer's ``--input-data`` file: one batch-1 ``recommend`` request per user, built by
    :func:`recstack.ensemble.funnel.request_arrays` as the clients build theirs; perf_analyzer sends them in turn and
    starts over. Every input carries its shape: the widths of ``item_seq`` and ``exclude`` vary between users.

    Examples
    --------
    >>> path = write_input_data([[5, 6, 7]], Path("/tmp/input.json"), seq_len=2)  # doctest: +SKIP
    >>> json.loads(path.read_text())["data"][0]  # doctest: +SKIP
    {'item_seq': {'content': [6, 7], 'shape': [2]}, 'exclude': {'content': [5], 'shape': [1]}, 'limit': ...}
    """
    from recstack.ensemble.funnel import request_arrays

    if not len(histories):
        raise ValueError("at least one history is needed")
    exclude = [[] for _ in histories] if exclude is None else exclude
    if len(exclude) != len(histories):
        raise ValueError(f"{len(exclude)} exclude lists for {len(histories)} histories")
    entries = []
    for history, excluded in zip(histories, exclude, strict=True):
        arrays = request_arrays([history], [excluded], limit, seq_len)
        entries.append({name: {"content": array[0].tolist(), "shape": list(array.shape[1:])}
                        for name, array in zip(INPUTS, arrays, strict=True)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": entries}))
    return path


def command(perf_analyzer: Path, url: str, protocol: str, input_data: Path, csv_path: Path, *,
            concurrency: int | None = None, request_rate: float | None = None, measurement_ms: int = 4000,
            stability_percentage: float = 30.0, max_trials: int = 10, model: str = "recommend") -> list[str]:
    """The perf_analyzer command line of one load point: a concurrency or a request rate."""
    if (concurrency is None) == (request_rate is None):
        raise ValueError("one load point: a concurrency or a request rate")
    args = [str(perf_analyzer), "-m", model, "-u", url, "-i", protocol, "-b", "1", f"--input-data={input_data}",
            "--percentile=99", "-f", str(csv_path), "--verbose-csv"]
    if concurrency is not None:
        args.append(f"--concurrency-range={concurrency}")
    else:
        # Asynchronous sends, so a slow response never holds back the next scheduled request (open loop).
        args += [f"--request-rate-range={request_rate:g}", "--async"]
    return args + [f"--measurement-interval={measurement_ms}", f"--stability-percentage={stability_percentage:g}",
                   f"--max-trials={max_trials}"]


def parse_csv(text: str) -> list[dict]:
    """The rows of perf_analyzer's ``-f`` report: load (``concurrency`` or ``request_rate``), ``throughput``
    (infer/s) and every latency column in milliseconds (the file has microseconds). Empty cells (GPU metrics
    on a CPU host) and unknown columns are left out."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "Inferences/Second" not in reader.fieldnames:
        raise ValueError(f"not a perf_analyzer CSV report: {text[:200]!r}")
    rows = []
    for raw in reader:
        row = {}
        for column, cell in raw.items():
            if cell in (None, ""):
                continue
            if column in _LOAD_COLUMNS:
                key, kind = _LOAD_COLUMNS[column]
                row[key] = kind(float(cell)) if kind is int else kind(cell)
            elif column in _MICROSECOND_COLUMNS:
                row[_MICROSECOND_COLUMNS[column]] = float(cell) / 1000
        rows.append(row)
    return rows


def parse_server_stats(output: str, model: str = "recommend") -> dict[str, dict]:
    """Server-side mean latency, queue and compute (ms) per model from perf_analyzer's printed summary: the
    ensemble (its ``Server:`` block) and each composing model. The CSV's queue column holds only the ensemble
    scheduler's own queue, not the composing models' ones."""
    stats, current = {}, None
    for line in output.splitlines():
        if line.strip() == "Server:":
            current = model
        elif found := _MODEL_LINE.match(line):
            current = found[1]
        elif current and (found := _LATENCY_LINE.search(line)):
            parts = {name.strip(" +"): int(us) for name, us in _LATENCY_PART.findall(found[2])}
            compute = parts.get("compute", sum(v for k, v in parts.items() if k.startswith("compute ")))
            stats[current] = {"latency_ms": int(found[1]) / 1000, "queue_ms": parts.get("queue", 0) / 1000,
                              "compute_ms": compute / 1000}
            current = None
    return stats


def run(perf_analyzer: Path, url: str, protocol: str, input_data: Path, *, concurrency: list[int] | None = None,
        request_rates: list[float] | None = None, measurement_ms: int = 4000, stability_percentage: float = 30.0,
        max_trials: int = 10, model: str = "recommend", csv_dir: Path | None = None,
        timeout_s: float = 600) -> list[dict]:
    """Measure each concurrency (closed loop) then each request rate (open loop), one perf_analyzer run per
    point; raises :class:`PerfAnalyzerError` with its output when a run fails or does not stabilise.

    Each result holds ``protocol``, ``model``, ``concurrency`` or ``request_rate`` (the other None), ``throughput``, the
    percentiles and client/server columns of :func:`parse_csv`, ``server`` (:func:`parse_server_stats`),
    ``kept_up`` (False when perf_analyzer could not send at the offered rate) and ``command``. The raw CSVs are
    kept in ``csv_dir`` when given.

    ``stability_percentage`` is wider than perf_analyzer's 10 % because p99 over a few seconds of requests moves
    more than that between windows on a machine shared with the server.

    Examples
    --------
    >>> run(install(), "127.0.0.1:8001", "grpc", Path("input.json"), concurrency=[1, 4])  # doctest: +SKIP
    [{'protocol': 'grpc', 'concurrency': 1, 'request_rate': None, 'throughput': 77.8, 'p50_ms': 12.2, ...}, ...]
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    points = [("concurrency", c) for c in concurrency or []] + [("request_rate", r) for r in request_rates or []]
    if not points:
        raise ValueError("no load point: give concurrency levels or request rates")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(csv_dir) if csv_dir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for kind, value in points:
            csv_path = folder / f"{protocol}-{kind}-{value:g}.csv"
            args = command(perf_analyzer, url, protocol, input_data, csv_path, **{kind: value},
                           measurement_ms=measurement_ms, stability_percentage=stability_percentage,
                           max_trials=max_trials, model=model)
            output = _call(args, perf_analyzer, kind, value, timeout_s)
            rows = parse_csv(csv_path.read_text())
            if len(rows) != 1:
                raise PerfAnalyzerError(f"{csv_path} holds {len(rows)} rows, expected 1", args, output)
            results.append({"protocol": protocol, "model": model, "concurrency": None, "request_rate": None, **rows[0],
                            "server": parse_server_stats(output, model), "kept_up": NOT_KEEPING_UP not in output,
                            "command": shlex.join(args)})
    return results


def _label(kind: str, value: float) -> str:
    return f"concurrency {value}" if kind == "concurrency" else f"{value:g} req/s"


def _call(args: list[str], perf_analyzer: Path, kind: str, value: float, timeout_s: float) -> str:
    point = _label(kind, value)
    try:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=environment(perf_analyzer), timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise PerfAnalyzerError(f"perf_analyzer ran past {timeout_s:.0f} s at {point}", args, output) from exc
    if done.returncode == 0:
        return done.stdout
    reason = f"perf_analyzer exited with code {done.returncode} at {point}"
    if any(marker in done.stdout for marker in UNSTABLE):
        reason += (": no stable measurement (lengthen the measurement windows, widen the stability percentage or "
                   "allow more trials")
        reason += ", or offer less: above capacity an open loop never settles)" if kind != "concurrency" else ")"
    tail = "\n".join(done.stdout.splitlines()[-30:])
    raise PerfAnalyzerError(f"{reason}\n$ {shlex.join(args)}\n{tail}", args, done.stdout)


def format_table(results: list[dict]) -> str:
    """A markdown table of the load points; server queue and compute are the ensemble's totals over its
    composing models."""
    lines = ["| protocol | load | infer/s | p50 ms | p90 ms | p95 ms | p99 ms | server queue ms | "
             "server compute ms | kept up |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        load = f"concurrency {r['concurrency']}" if r["concurrency"] is not None else f"{r['request_rate']:g} req/s"
        server = r["server"].get(r["model"], {})
        queue, compute = (f"{server[k]:.2f}" if k in server else "" for k in ("queue_ms", "compute_ms"))
        lines.append(f"| {r['protocol']} | {load} | {r['throughput']:.1f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {queue} | {compute} | "
                     f"{'yes' if r['kept_up'] else 'no'} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    """p50 (solid) and p99 (dashed) latency against achieved throughput (closed loop) and offered rate (open
    loop), one colour per protocol."""
    panels = (("concurrency", "throughput", "closed loop: achieved throughput (infer/s)"),
              ("request_rate", "request_rate", "open loop: offered load (req/s)"))
    with figure(path, size=(11, 4)) as (_, axes):
        for axis, (kind, x_key, label) in zip(axes, panels, strict=True):
            for color, protocol in zip(("C0", "C1"), PROTOCOLS, strict=True):
                points = sorted((r for r in results if r["protocol"] == protocol and r[kind] is not None),
                                key=lambda r: r[kind])
                if not points:
                    continue
                x = [r[x_key] for r in points]
                axis.plot(x, [r["p50_ms"] for r in points], "o-", color=color, label=f"{protocol} p50")
                axis.plot(x, [r["p99_ms"] for r in points], "s--", color=color, label=f"{protocol} p99")
                if kind == "concurrency":
                    for r in points:
                        axis.annotate(f"c={r['concurrency']}", (r["throughput"], r["p99_ms"]), fontsize=7,
                                      textcoords="offset points", xytext=(3, 3))
            axis.set_xlabel(label)
            axis.set_ylabel("latency (ms)")
            axis.set_title(f"recommend, batch 1, perf_analyzer ({label.split(':')[0]})")
            if axis.has_data():
                axis.legend()
            else:
                axis.text(0.5, 0.5, "no points measured", ha="center", va="center", transform=axis.transAxes)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench perf-analyzer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, default=settings.model_repository,
                        help="built model repository [%(default)s]")
    parser.add_argument("--data", type=Path, default=settings.data_output("synthetic"),
                        help="prepared dataset whose test users' histories are sent [%(default)s]")
    parser.add_argument("--users", type=int, default=1000, help="distinct requests, one per test user")
    parser.add_argument("--limit", type=int, default=20, help="items asked for per request")
    parser.add_argument("--protocol", nargs="+", choices=PROTOCOLS, default=list(PROTOCOLS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8], help="closed-loop points")
    parser.add_argument("--rates", type=float, nargs="+",
                        help="open-loop points in req/s [1/4, 1/2, 3/4 of the best closed-loop throughput]")
    parser.add_argument("--measurement-ms", type=int, default=4000, help="length of a measurement window")
    parser.add_argument("--stability", type=float, default=30.0,
                        help="largest spread (%%) of p99 and throughput over the last 3 windows")
    parser.add_argument("--max-trials", type=int, default=10, help="windows before a point counts as unstable")
    parser.add_argument("--smoke", action="store_true",
                        help="concurrency 1 only (and --rates if given), 1 s windows, stable within 100 %%: "
                             "checks the set-up, gives no figure to quote")
    parser.add_argument("--tools", type=Path, default=settings.build_dir / "tools",
                        help="where perf_analyzer is installed [%(default)s]")
    parser.add_argument("--work", type=Path, default=settings.build_dir / "bench" / "perf_analyzer",
                        help="input data, raw CSVs and the server's files [%(default)s]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go [%(default)s]")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.concurrency, args.measurement_ms, args.stability = [1], 1000, 100.0
    say = print if not args.quiet else (lambda *_: None)

    import polars as pl
    from recstack.ensemble.server import TritonServer

    binary = install(args.tools)
    test_users = PreparedLayout(args.data).eval_test
    if not test_users.exists():
        raise SystemExit(f"no {test_users}: run `recstack preprocess` first (or give --data)")
    histories = pl.read_parquet(test_users, columns=["history"]).head(args.users)["history"].to_list()
    seq_len = max_length(args.repository)
    input_data = write_input_data(histories, args.work / "input_data.json", seq_len, args.limit)
    options = {"measurement_ms": args.measurement_ms, "stability_percentage": args.stability,
               "max_trials": args.max_trials}
    results, failures = [], []
    with TritonServer(args.repository, work_dir=args.work / "triton") as server:
        for protocol in args.protocol:
            url = server.grpc_url if protocol == "grpc" else server.http_url
            closed = _points(binary, url, protocol, input_data, options, args.work / "csv", failures, say,
                             "concurrency", args.concurrency)
            rates = args.rates
            if rates is None and not args.smoke and closed:
                peak = max(r["throughput"] for r in closed)
                rates = [round(f * peak, 1) for f in RATE_FRACTIONS]
            opened = _points(binary, url, protocol, input_data, options, args.work / "csv", failures, say,
                             "request_rates", rates or [])
            results += closed + opened
    machine = describe_machine()
    payload = {"benchmark": "perf_analyzer", "machine": machine,
               "client": f"perf_analyzer {version(binary)} on the same host, sharing its {machine['cores']} cores "
                         "with Triton",
               "repository": str(args.repository), "data": str(args.data), "distinct_requests": len(histories),
               "seq_len": seq_len, "limit": args.limit, "batch_size": 1, **options,
               "results": results, "failures": failures}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "perf_analyzer.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results, args.out / "perf_analyzer.png")
    print(format_table(results))
    for failure in failures:
        print(f"\nFAILED {failure['protocol']} {failure['point']}: {failure['error']}", file=sys.stderr)
    return 1 if failures else 0


def _points(binary, url, protocol, input_data, options, csv_dir, failures, say, kind, values) -> list[dict]:
    """:func:`run` point by point (``kind`` is ``concurrency`` or ``request_rates``), so a point that fails is
    recorded and the others are still measured."""
    measured = []
    for value in values:
        point = _label(kind, value)
        try:
            (result,) = run(binary, url, protocol, input_data, **{kind: [value]}, **options, csv_dir=csv_dir)
        except PerfAnalyzerError as exc:
            failures.append({"protocol": protocol, "point": point, "error": str(exc),
                             "command": shlex.join(exc.command or [])})
            say(f"  {protocol} {point}: FAILED ({str(exc).splitlines()[0]})")
            continue
        measured.append(result)
        say(f"  {protocol} {point}: {result['throughput']:.1f} infer/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms")
    return measured
