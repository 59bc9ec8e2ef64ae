"""Load test of `omnireward serve` against its bound: offline `omnireward score` on the same records.

    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py [--model DIR] [--clients 1,8,32] [--smoke]

Without --model, trains the embedded default (SmolLM2-135M) for one epoch on a small text demo
set in --work and serves that folder. The server runs as its own process (`omnireward serve`, as
a user starts it), so the clients in this process do not share its interpreter. For each N, N
client threads, each with one keep-alive connection, send `POST /get_reward` requests of one
rollout each (`{"query": [prompt + " " + response], "prompts": [prompt], "labels": [""]}`) until
the level's request count or time limit is reached; request i carries rollout i (cycling through
the demo set's test rollouts), so every level sends the same records. Reported per N: rollouts/s,
p50/p99 latency, errors, and the batches the server formed (a histogram of sequences per forward
pass, from GET /info before and after).

The bound, measured in the same run: the `omnireward score` pipeline (`score_stream`, as the CLI
runs it, one DataLoader worker, the model already loaded and warmed up) on the records of the
largest level, with the server's --max-batch-size as --batch-size, on the same device; once before
the served levels and once after. Its rate is the steady one (records after the first batch over
the time from the first batch's end to the last's: the DataLoader's start-up left out), and the
bound is the mean of the two runs; their wall-clock rates are recorded beside.
`served_vs_offline` is each level's rollouts/s over it. The latency reference is one client
sending --max-batch-size rollouts per request (a full batch each time):
`p99_vs_one_client_full_batch` is each level's p99 over that client's. The rewards served at the
largest level are compared with the offline ones (`max_abs_reward_diff`), so that both runs score
the same records.

`--tiny` serves a tiny random model instead, so that the figures show what the server itself
costs (HTTP, parsing, batching) rather than the model's arithmetic. `--smoke` is a quick check
of the script (tiny model, few requests; its line goes to WORK/results). Appends one line to
benchmarks/results/serve_load.jsonl (or --results-dir), with the machine's load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_log import append  # noqa: E402


def train_model(work: Path, n_pairs: int) -> Path:
    from omnireward.config import compose_config
    from omnireward.data.demo import build_demo
    from omnireward.train import train

    data = build_demo("text", work / "data", n_pairs=n_pairs, seed=0)
    return train(
        compose_config(
            [
                "modality=text",
                f"data.train={data / 'train.jsonl'}",
                f"data.val={data / 'val.jsonl'}",
                f"output_dir={work / 'model'}",
                "trainer.max_epochs=1",
                "logger.tensorboard=false",
            ]
        )
    )


def tiny_model(work: Path) -> Path:
    """A tiny random reward model (2-layer Llama, SmolLM2's tokenizer): the server's own cost, not the model's."""
    from omnireward.config import compose_config
    from omnireward.train import build_module

    out = work / "tiny"
    cfg = compose_config(["backbone=tiny", "head.dropout=0", f"output_dir={out}"])
    return build_module(cfg).model.eval().save_pretrained(out, cfg, {"mean": 0.0, "std": 1.0, "n": 0})


def rollouts(work: Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs from the text demo set: the requests' contents."""
    data = work / "data" / "test.jsonl"
    if not data.exists():
        from omnireward.data.demo import build_demo

        build_demo("text", work / "data", n_pairs=50, seed=0)
    out = []
    for line in data.read_text().splitlines():
        r = json.loads(line)
        out += [
            (r["prompt"], r["response1"] if isinstance(r["response1"], str) else r["response1"].get("text", "")),
            (r["prompt"], r["response2"] if isinstance(r["response2"], str) else r["response2"].get("text", "")),
        ]
    return out


class Server:
    """`omnireward serve` in a child process on a free loopback port."""

    def __init__(self, model: Path, args: list[str]):
        exe = Path(sys.executable).with_name("omnireward")
        self.proc = subprocess.Popen(
            [str(exe), "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0", "--quiet", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 600
        line = ""
        seen: list[str] = []
        while "serving" not in line:
            line = self.proc.stdout.readline()
            seen.append(line.strip())
            if not line or time.time() > deadline:
                self.proc.kill()
                raise RuntimeError("the server did not start: " + " | ".join(x for x in seen[-6:] if x))
        host, port = re.search(r"http://(127\.0\.0\.1):(\d+)", line).groups()
        self.host, self.port = host, int(port)
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained

    def get(self, route: str) -> dict:
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        c.request("GET", route)
        return json.loads(c.getresponse().read())

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


def rollout(data: list[tuple[str, str]], i: int) -> tuple[str, str]:
    """Rollout i of a level (the same i always gets the same record)."""
    return data[i % len(data)]


def level(
    server: Server,
    n_clients: int,
    n_requests: int,
    max_seconds: float,
    data: list[tuple[str, str]],
    per_request: int = 1,
    rewards: dict | None = None,
) -> dict:
    """N clients, `n_requests` requests in all (or until `max_seconds`), `per_request` rollouts per
    request (request i carries rollouts i*per_request ...). `rewards`, when given, collects the
    served reward of each rollout index."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    issued = [0]
    deadline = time.monotonic() + max_seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=max(120.0, max_seconds))
        while True:
            with lock:
                if issued[0] >= n_requests or time.monotonic() > deadline:
                    return
                i = issued[0]
                issued[0] += 1
            idx = [i * per_request + j for j in range(per_request)]
            pairs = [rollout(data, x) for x in idx]
            body = json.dumps(
                {"query": [f"{p} {r}" for p, r in pairs], "prompts": [p for p, _ in pairs], "labels": [""] * len(pairs)}
            )
            t0 = time.perf_counter()
            got = None
            try:
                conn.request("POST", "/get_reward", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
                got = json.loads(payload)["rewards"] if resp.status == 200 else None
                ok = got is not None and len(got) == len(pairs)
                err = None if ok else f"HTTP {resp.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                err = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=max(120.0, max_seconds))
            dt = time.perf_counter() - t0
            with lock:
                (errors.append(err) if err else latencies.append(dt))
                if rewards is not None and not err:
                    rewards.update(zip(idx, got))

    before = server.get("/info")["batches"]
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server.get("/info")["batches"]
    lat = sorted(latencies)

    def pct(q: float) -> float | None:
        return lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] if lat else None

    batches = after["batches"] - before["batches"]
    sizes = {k: v - before["sequences_per_batch"].get(k, 0) for k, v in after["sequences_per_batch"].items()}
    return {
        "clients": n_clients,
        "rollouts_per_request": per_request,
        "requests": len(lat) + len(errors),
        "ok": len(lat),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(wall, 2),
        "requests_per_s": len(lat) / wall if wall else None,
        "rollouts_per_s": len(lat) * per_request / wall if wall else None,
        "p50_s": pct(0.5),
        "p99_s": pct(0.99),
        "batches": batches,
        "mean_batch": (after["sequences"] - before["sequences"]) / batches if batches else None,
        "max_batch": max((int(k) for k, v in sizes.items() if v > 0), default=0),
        "batch_sizes": {k: v for k, v in sorted(sizes.items(), key=lambda kv: int(kv[0])) if v > 0},
    }


class _Timed:
    """A scorer that notes when each batch's forward pass returned, and how many records it held."""

    def __init__(self, scorer):
        self.scorer = scorer
        self.marks: list[tuple[float, int]] = []

    def prepare(self, planned):
        return self.scorer.prepare(planned)

    def score(self, planned, prepared):
        lines = self.scorer.score(planned, prepared)
        self.marks.append((time.perf_counter(), len(planned.records)))
        return lines


class Offline:
    """The `omnireward score` pipeline on this process's copy of the model (loaded once, as the CLI
    loads it, and left out of the time)."""

    def __init__(self, model: Path, work: Path, batch_size: int, device: str = "cpu"):
        from omnireward.scoring.bt import BTModel

        self.model, self.work, self.batch_size = model, work, batch_size
        self.scorer = BTModel(str(model), "none", device)()

    def write(self, name: str, pairs: list[tuple[str, str]]) -> Path:
        path = self.work / name
        path.write_text(
            "".join(json.dumps({"id": str(i), "prompt": p, "response": r}) + "\n" for i, (p, r) in enumerate(pairs))
        )
        return path

    def run(self, path: Path) -> dict:
        """`omnireward score PATH --batch-size B`: its wall time (`seconds`, from reading the records
        to the summary), its steady rate (`records_per_s`: the records after the first batch over the
        time from the first batch's end to the last's, leaving out the start-up of the DataLoader
        worker), and the score lines in input order."""
        from omnireward.scoring.identity import run_identity
        from omnireward.scoring.output import ScoresFile
        from omnireward.scoring.stream import score_stream

        out = path.with_suffix(".scores.jsonl")
        options = {
            "quant": "none",
            "format": "auto",
            "media_root": None,
            "allow_outside_root": False,
            "on_bad_record": "reject",
        }
        identity = run_identity(self.model, path, options)  # hashes the model folder: not scoring time
        timed = _Timed(self.scorer)
        t0 = time.perf_counter()
        score_stream(
            path, out, lambda: timed, identity, batch_size=self.batch_size, overwrite=True, show_progress=False
        )
        seconds = time.perf_counter() - t0
        (t_first, _), (t_last, _) = timed.marks[0], timed.marks[-1]
        after_first = sum(n for _, n in timed.marks[1:])
        lines = list(ScoresFile(out).lines())
        return {
            "records": len(lines),
            "seconds": seconds,
            "batches": len(timed.marks),
            "records_per_s": after_first / (t_last - t_first) if after_first else len(lines) / seconds,
            "lines": lines,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a model folder (default: train one in --work)")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="serve a tiny random model instead: measures the server (HTTP, parsing, batching) more than the model",
    )
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="a quick check of the script: tiny model, clients 1,8, "
        "32 requests, batch 8; the line goes to WORK/results unless --results-dir says otherwise",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/omnireward-serve-load"))
    ap.add_argument("--train-pairs", type=int, default=40, help="demo pairs to train the default model on (1 epoch)")
    ap.add_argument("--clients", default=None, help="comma-separated numbers of concurrent clients (default 1,8,32)")
    ap.add_argument("--requests", type=int, default=None, help="requests per level, all clients together (default 256)")
    ap.add_argument(
        "--reference-requests",
        type=int,
        default=None,
        help="requests of --max-batch-size rollouts each that one client sends for the latency reference (default 8)",
    )
    ap.add_argument("--max-seconds", type=float, default=300.0, help="time limit per level")
    ap.add_argument("--warmup", type=int, default=8, help="requests before the first level (not counted)")
    ap.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="the server's --max-batch-size and the offline --batch-size (default 32)",
    )
    ap.add_argument("--batch-timeout", type=float, default=0.01)
    ap.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help="where the results line goes (default: benchmarks/results; with --smoke: WORK/results)",
    )
    ap.add_argument("--no-record", action="store_true", help="print the figures without appending a results line")
    a = ap.parse_args()
    smoke = {"clients": "1,8", "requests": 32, "reference_requests": 2, "max_batch_size": 8}
    full = {"clients": "1,8,32", "requests": 256, "reference_requests": 8, "max_batch_size": 32}
    for k, v in (smoke if a.smoke else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.tiny = a.tiny or a.smoke

    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if a.tiny:
        model = tiny_model(a.work)
    else:
        model = a.model or (
            a.work / "model" if (a.work / "model" / "omnireward.yaml").exists() else train_model(a.work, a.train_pairs)
        )
    train_s = time.time() - t0
    data = rollouts(a.work)
    ns = [int(x) for x in a.clients.split(",")]
    n_offline = a.requests  # the records of the largest level: rollouts 0 .. requests-1
    offline = Offline(model, a.work, a.max_batch_size)
    records = offline.write("offline.jsonl", [(p, r.strip()) for p, r in (rollout(data, i) for i in range(n_offline))])
    offline.run(offline.write("offline-warmup.jsonl", [rollout(data, i) for i in range(2 * a.max_batch_size)]))
    runs = [offline.run(records)]
    server = Server(
        model,
        [
            "--max-batch-size",
            str(a.max_batch_size),
            "--batch-timeout",
            str(a.batch_timeout),
            "--device",
            "cpu",
            "--request-timeout",
            str(max(120.0, a.max_seconds)),
        ],
    )
    served: dict = {}
    try:
        level(server, 1, a.warmup, a.max_seconds, data)
        levels = {}
        for n in ns:
            levels[str(n)] = r = level(
                server, n, a.requests, a.max_seconds, data, rewards=served if n == max(ns) else None
            )
            print(json.dumps(r), flush=True)
        reference = level(server, 1, a.reference_requests, a.max_seconds, data, per_request=a.max_batch_size)
        print(json.dumps(reference), flush=True)
        peak = server.peak_rss_mib()
        info = server.get("/info")
    finally:
        server.stop()
    runs.append(offline.run(records))
    bound = sum(r["records_per_s"] for r in runs) / len(runs)
    lines = runs[-1]["lines"]
    diffs = [abs(served[i] - lines[i]["reward"]) for i in range(n_offline) if i in served]
    base = levels[str(ns[0])]["rollouts_per_s"]
    ref_p99 = reference["p99_s"]
    top = levels[str(max(ns))]
    figures = {
        "levels": levels,
        "peak_rss_mib": round(peak, 1),
        "speedup": {k: v["rollouts_per_s"] / base for k, v in levels.items() if base},
        "offline": {
            "records": n_offline,
            "batch_size": a.max_batch_size,
            "workers": 1,
            "records_per_s": bound,
            "runs": [{k: v for k, v in r.items() if k != "lines"} for r in runs],
            "wall_records_per_s": [n_offline / r["seconds"] for r in runs],
        },
        "served_vs_offline": {k: v["rollouts_per_s"] / bound for k, v in levels.items()},
        "one_client_full_batch": reference,
        "p99_vs_one_client_full_batch": {
            k: v["p99_s"] / ref_p99 for k, v in levels.items() if ref_p99 and v["p99_s"] is not None
        },
        "max_abs_reward_diff": max(diffs) if diffs else None,
        "rewards_compared": len(diffs),
        "goal": {
            "clients": max(ns),
            "served_vs_offline": top["rollouts_per_s"] / bound,
            "served_vs_offline_target": 0.85,
            "p99_vs_one_client_full_batch": top["p99_s"] / ref_p99 if ref_p99 and top["p99_s"] else None,
            "p99_target": 2.0,
        },
        "errors": sum(v["errors"] for v in levels.values()) + reference["errors"],
        "settings": {
            "max_batch_size": a.max_batch_size,
            "batch_timeout": a.batch_timeout,
            "requests_per_level": a.requests,
            "reference_requests": a.reference_requests,
            "max_seconds": a.max_seconds,
            "smoke": a.smoke,
            "model": "tiny random (2-layer Llama, hidden 64)"
            if a.tiny
            else "embedded default (SmolLM2-135M), 1 epoch"
            if a.model is None
            else str(a.model),
            "replicas": info["batching"]["replicas"],
        },
        "train_s": round(train_s, 1),
    }
    g = figures["goal"]
    g["met"] = bool(
        g["served_vs_offline"] >= 0.85
        and g["p99_vs_one_client_full_batch"] is not None
        and g["p99_vs_one_client_full_batch"] <= 2.0
    )
    print(json.dumps(figures, indent=2))
    if not a.no_record:
        results_dir = a.results_dir or (a.work / "results" if a.smoke else None)
        line = append("serve_load", figures, results_dir=results_dir)
        where = results_dir or "benchmarks/results"
        print(f"results line appended to {where}/serve_load.jsonl (load average {line['machine'].get('load_1min')})")


if __name__ == "__main__":
    main()
