#!/usr/bin/python3
"""PyTorch reference for FedAvg.Actors' benchmarks: the seeds' FedAvg as they meant it.

Runs under Debian's python3-torch (1.13.1) and the system Python. It is the anchor of docs/benchmarks.md, not a
straw man: same models, same shards (read from `fedavg partition`), same settings, an explicit thread budget
(torch.set_num_threads), and OpenBLAS with OPENBLAS_NUM_THREADS=1 set by scripts/bench.sh.

  fedavg_reference.py throughput --model seed002-cnn --batch 64 --threads 1 --samples 20000 --repeats 3
  fedavg_reference.py rounds --partitions parts.json --model seed001-2nn --epochs 10 --batch 32 --lr 0.01 \
      --momentum 0.9 --rounds 1 --threads 2

Each prints one JSON object per line.
"""
import argparse
import gzip
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN_STD = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}
FILES = {
    "mnist": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    "fashion-mnist": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                      "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path, rank):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:3] != b"\x00\x00\x08" or data[3] != rank:
        sys.exit(f"{path}: not an IDX file of rank {rank}")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        sys.exit(f"{path}: length does not match its header")
    return body.reshape(dims)


def load(data_dir, dataset, standardize):
    folder = os.path.join(data_dir, dataset)
    tri, trl, tei, tel = (os.path.join(folder, f) for f in FILES[dataset])

    def images(path):
        x = torch.from_numpy(read_idx(path, 3).astype(np.float32) / 255.0).unsqueeze(1)
        if standardize:
            mean, std = MEAN_STD[dataset]
            x = (x - mean) / std
        return x.contiguous()

    def labels(path):
        return torch.from_numpy(read_idx(path, 1).astype(np.int64))

    return images(tri), labels(trl), images(tei), labels(tel)


def model(name):
    """The same architectures as FedAvg.Core's ModelZoo."""
    if name == "seed000-cnn":
        return nn.Sequential(nn.Conv2d(1, 10, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(10, 20, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(320, 50), nn.ReLU(), nn.Linear(50, 10))
    if name == "seed001-2nn":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(), nn.Linear(200, 10))
    if name == "seed002-cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "mcmahan-cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, 10))
    sys.exit(f"unknown model {name}")


def train_local(net, x, y, indices, epochs, batch, lr, momentum, generator):
    """Local SGD on one client's shard: E epochs of shuffled mini-batches of B, tracking loss and accuracy per
    batch as seed 002's train_model does (and as FedAvg.Actors' trainer does)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    net.train()
    idx = torch.as_tensor(indices, dtype=torch.int64)
    total_loss, correct, seen = 0.0, 0, 0
    for _ in range(epochs):
        order = idx[torch.randperm(len(idx), generator=generator)]
        for start in range(0, len(order), batch):
            b = order[start:start + batch]
            optimizer.zero_grad()
            output = net(x[b])
            target = y[b]
            loss = F.cross_entropy(output, target)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(b)
            correct += (output.argmax(1) == target).sum().item()
            seen += len(b)
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def evaluate(net, x, y, batch=200):
    net.eval()
    correct = 0
    for start in range(0, len(y), batch):
        correct += (net(x[start:start + batch]).argmax(1) == y[start:start + batch]).sum().item()
    return correct / len(y)


def cmd_throughput(a):
    torch.set_num_threads(a.threads)
    x, y, _, _ = load(a.data_dir, "mnist", True)
    net = model(a.model)
    indices = list(range(a.samples))
    g = torch.Generator().manual_seed(1)
    train_local(net, x, y, indices[:2048], 1, a.batch, 0.01, 0.9, g)  # warm-up
    rates = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        train_local(net, x, y, indices, 1, a.batch, 0.01, 0.9, g)
        rates.append(a.samples / (time.perf_counter() - start))
    print(json.dumps({"bench": "train", "impl": "pytorch", "torch": torch.__version__, "model": a.model, "batch": a.batch,
                      "threads": a.threads, "samples_per_s": statistics.median(rates), "runs": rates}))


def cmd_rounds(a):
    """The seeds' FedAvg loop: every client trains from the global weights, then w = sum(n_k w_k) / sum(n_k)."""
    torch.set_num_threads(a.threads)
    with open(a.partitions) as f:
        parts = json.load(f)
    x, y, tx, ty = load(a.data_dir, parts["dataset"], a.standardize)
    torch.manual_seed(a.seed)
    global_net = model(a.model)
    local_net = model(a.model)
    g = torch.Generator().manual_seed(a.seed)
    shards = parts["indices"]
    for r in range(1, a.rounds + 1):
        start = time.perf_counter()
        global_state = {k: v.clone() for k, v in global_net.state_dict().items()}
        total = sum(len(s) for s in shards)
        acc = {k: torch.zeros_like(v) for k, v in global_state.items()}
        for shard in shards:
            local_net.load_state_dict(global_state)
            train_local(local_net, x, y, shard, a.epochs, a.batch, a.lr, a.momentum, g)
            weight = len(shard) / total
            for k, v in local_net.state_dict().items():
                acc[k].add_(v, alpha=weight)
        global_net.load_state_dict(acc)
        round_s = time.perf_counter() - start
        accuracy = evaluate(global_net, tx, ty)
        print(json.dumps({"bench": "round", "impl": "pytorch", "round": r, "round_s": round_s, "test_accuracy": accuracy,
                          "clients": len(shards), "threads": a.threads}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("FEDAVG_DATA", "data"))
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="seed002-cnn")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--samples", type=int, default=20000)
    t.add_argument("--repeats", type=int, default=3)
    r = sub.add_parser("rounds")
    r.add_argument("--partitions", required=True)
    r.add_argument("--model", default="seed001-2nn")
    r.add_argument("--epochs", type=int, default=10)
    r.add_argument("--batch", type=int, default=32)
    r.add_argument("--lr", type=float, default=0.01)
    r.add_argument("--momentum", type=float, default=0.9)
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--standardize", action="store_true")
    a = p.parse_args()
    {"throughput": cmd_throughput, "rounds": cmd_rounds}[a.command](a)


if __name__ == "__main__":
    main()
