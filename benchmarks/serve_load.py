"""Load test of `omnireward serve`: N concurrent loopback clients sending OpenRLHF-shaped requests.

    HF_HUB_OFFLINE=1 python benchmarks/serve_load.py [--model DIR] [--clients 1,8,32]

Without --model, trains the embedded default (SmolLM2-135M) for one epoch on a small text demo
set in --work and serves that folder. The server runs as its own process (`omnireward serve`, as
a user starts it), so the clients in this process do not share its interpreter. For each N, N
client threads, each with one keep-alive connection, send `POST /get_reward` requests of one
rollout each (`{"query": [prompt + response], "prompts": [prompt], "labels": [""]}`) until the
level's request count or time limit is reached. Reported per N: requests/s, p50/p99 latency,
errors, and the batches the server formed (from GET /info before and after); and the server's
peak RSS. `--tiny` serves a tiny random model instead, so that the figures show what the server
itself costs (HTTP, parsing, batching) rather than the model's arithmetic. Appends one line to
benchmarks/results/serve_load.jsonl.
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
    return train(compose_config(["modality=text", f"data.train={data / 'train.jsonl'}",
                                 f"data.val={data / 'val.jsonl'}", f"output_dir={work / 'model'}",
                                 "trainer.max_epochs=1", "logger.tensorboard=false"]))


def tiny_model(work: Path) -> Path:
    """A tiny random reward model (2-layer Llama, SmolLM2's tokenizer): the server's own cost, not the model's."""
    from omnireward.config import compose_config
    from omnireward.train import build_module

    out = work / "tiny"
    cfg = compose_config(["backbone=tiny", "model.dropout=0", f"output_dir={out}"])
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
        out += [(r["prompt"], r["response1"] if isinstance(r["response1"], str) else r["response1"].get("text", "")),
                (r["prompt"], r["response2"] if isinstance(r["response2"], str) else r["response2"].get("text", ""))]
    return out


class Server:
    """`omnireward serve` in a child process on a free loopback port."""

    def __init__(self, model: Path, args: list[str]):
        exe = Path(sys.executable).with_name("omnireward")
        self.proc = subprocess.Popen([str(exe), "serve", "--model", str(model), "--host", "127.0.0.1", "--port", "0",
                                      "--quiet", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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


def level(server: Server, n_clients: int, n_requests: int, max_seconds: float, data: list[tuple[str, str]]) -> dict:
    """N clients, `n_requests` requests in all (or until `max_seconds`), one rollout per request."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    issued = [0]
    deadline = time.monotonic() + max_seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        while True:
            with lock:
                if issued[0] >= n_requests or time.monotonic() > deadline:
                    return
                i = issued[0]
                issued[0] += 1
            prompt, response = data[(i * 7 + k) % len(data)]
            body = json.dumps({"query": [f"{prompt} {response}"], "prompts": [prompt], "labels": [""]})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/get_reward", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
                ok = resp.status == 200 and len(json.loads(payload)["rewards"]) == 1
                err = None if ok else f"HTTP {resp.status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                err = f"{type(e).__name__}: {e}"
                conn.close()
                conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
            dt = time.perf_counter() - t0
            with lock:
                (errors.append(err) if err else latencies.append(dt))

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
    return {"clients": n_clients, "requests": len(lat) + len(errors), "ok": len(lat), "errors": len(errors),
            "first_error": errors[0] if errors else None, "seconds": round(wall, 2),
            "requests_per_s": len(lat) / wall if wall else None, "p50_s": pct(0.5), "p99_s": pct(0.99),
            "batches": batches, "mean_batch": (after["sequences"] - before["sequences"]) / batches if batches else None,
            "max_batch": max((int(k) for k, v in sizes.items() if v > 0), default=0),
            "batch_sizes": {k: v for k, v in sizes.items() if v > 0}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="a model folder (default: train one in --work)")
    ap.add_argument("--tiny", action="store_true", help="serve a tiny random model instead: measures the server "
                    "(HTTP, parsing, batching) more than the model")
    ap.add_argument("--work", type=Path, default=Path("/tmp/omnireward-serve-load"))
    ap.add_argument("--train-pairs", type=int, default=40, help="demo pairs to train the default model on (1 epoch)")
    ap.add_argument("--clients", default="1,8,32", help="comma-separated numbers of concurrent clients")
    ap.add_argument("--requests", type=int, default=96, help="requests per level (all clients together)")
    ap.add_argument("--max-seconds", type=float, default=180.0, help="time limit per level")
    ap.add_argument("--warmup", type=int, default=8, help="requests before the first level (not counted)")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--batch-timeout", type=float, default=0.01)
    ap.add_argument("--no-record", action="store_true", help="print the figures without appending a results line")
    a = ap.parse_args()

    a.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if a.tiny:
        model = tiny_model(a.work)
    else:
        model = a.model or (a.work / "model" if (a.work / "model" / "omnireward.yaml").exists()
                            else train_model(a.work, a.train_pairs))
    train_s = time.time() - t0
    data = rollouts(a.work)
    server = Server(model, ["--max-batch-size", str(a.max_batch_size), "--batch-timeout", str(a.batch_timeout),
                            "--device", "cpu"])
    try:
        level(server, 1, a.warmup, a.max_seconds, data)
        levels = {}
        for n in (int(x) for x in a.clients.split(",")):
            levels[str(n)] = r = level(server, n, a.requests, a.max_seconds, data)
            print(json.dumps(r), flush=True)
        peak = server.peak_rss_mib()
        info = server.get("/info")
    finally:
        server.stop()
    ns = sorted(int(k) for k in levels)
    base = levels[str(ns[0])]["requests_per_s"]
    figures = {"levels": levels, "peak_rss_mib": round(peak, 1),
               "speedup": {k: v["requests_per_s"] / base for k, v in levels.items() if base},
               "errors": sum(v["errors"] for v in levels.values()),
               "settings": {"max_batch_size": a.max_batch_size, "batch_timeout": a.batch_timeout,
                            "requests_per_level": a.requests, "max_seconds": a.max_seconds,
                            "model": "tiny random (2-layer Llama, hidden 64)" if a.tiny else
                            "embedded default (SmolLM2-135M), 1 epoch" if a.model is None else str(a.model),
                            "replicas": info["batching"]["replicas"]},
               "train_s": round(train_s, 1)}
    print(json.dumps(figures, indent=2))
    if not a.no_record:
        append("serve_load", figures)


if __name__ == "__main__":
    main()
