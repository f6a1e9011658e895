"""Shared pieces of the PyTorch peers of specs/*.gen: Fashion-MNIST from its IDX files,
shuffled full batches, and the timing loop that prints one JSON line.

Device: --device cpu (the default) or cuda. On cuda the whole training set is moved to the GPU
once (not timed) and each batch is an index_select there; every random draw is made on the
GPU. --compile wraps each phase's forward-and-loss function (and the modules a phase calls
under torch.no_grad) in torch.compile (--compile-mode, default "default"); the optimizer step
stays eager. The first calls compile, so give --compile runs more --warmup steps.

Data, as genc's runtime does it (runtime/src/data): u8 pixels / 255 in [0, 1], then mapped to
the spec's `range: [lo, hi]` as lo + v * (hi - lo); every epoch visits a fresh permutation of
the training set and only the floor(N / B) full batches are used. The permutation comes from
numpy's PCG64 seeded with --seed, not genc's SplitMix64, so the batches differ from genc's
(the work per step does not).

Timing: --warmup steps (default 5) run first and are not timed; then --steps N steps are timed
with time.perf_counter; on cuda the device is synchronized before the clock is read at both
ends. Every loss is read back with .item() each step, as genc reads each phase's loss back
every step. On cuda the JSON also has the peak of torch.cuda.max_memory_allocated (MiB).
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np
import torch

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (raw or gzipped, recognised by the gzip magic) as a numpy array."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not a u8 IDX file")
    dims = struct.unpack(">" + "I" * rank, raw[4 : 4 + 4 * rank])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def fashion_mnist(split, lo, hi, folder=DEFAULT_DATA):
    """Images of `split` ("train" or "test") as a float32 tensor [N, 1, 28, 28] in [lo, hi]."""
    stem = "train" if split == "train" else "t10k"
    for name in (f"{stem}-images-idx3-ubyte.gz", f"{stem}-images-idx3-ubyte"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            break
    else:
        sys.exit(f"no {stem}-images-idx3-ubyte[.gz] in {folder}")
    x = read_idx(path).astype(np.float32) / 255.0
    x = lo + x * (hi - lo)
    return torch.from_numpy(np.ascontiguousarray(x[:, None, :, :]))


class Batches:
    """Shuffled full batches forever, epoch after epoch (a fresh batch per call). With
    `device`, the data set is moved there once and batches are gathered there."""

    def __init__(self, data, batch, seed, device=None):
        if device is not None and torch.device(device).type != "cpu":
            data = data.to(device)
        self.data, self.batch = data, batch
        self.rng = np.random.default_rng(seed)
        self.per_epoch = data.shape[0] // batch
        self.order, self.k = None, self.per_epoch

    def next(self):
        if self.k == self.per_epoch:
            self.order = torch.from_numpy(self.rng.permutation(self.data.shape[0])).to(self.data.device)
            self.k = 0
        idx = self.order[self.k * self.batch : (self.k + 1) * self.batch]
        self.k += 1
        return self.data.index_select(0, idx)


def genc_init_(module):
    """genc's initialisers (compiler/src/check/layers.rs): linear, conv2d and conv_transpose2d
    weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in*kh*kw for conv2d and
    out*kh*kw for conv_transpose2d (the weight's dim 1 times the kernel, as PyTorch counts it);
    norm layers weight 1, bias 0. This is PyTorch's default initialisation family already
    (kaiming_uniform with a = sqrt(5) gives the same bound); it is set explicitly so the
    correspondence does not hang on a library default."""
    for m in module.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            w = m.weight
            fan_in = w.shape[1] * (w[0, 0].numel() if w.dim() > 2 else 1)
            bound = 1.0 / max(fan_in, 1) ** 0.5
            with torch.no_grad():
                w.uniform_(-bound, bound)
                if m.bias is not None:
                    m.bias.uniform_(-bound, bound)
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
            if m.weight is not None:
                with torch.no_grad():
                    m.weight.fill_(1.0)
                    m.bias.fill_(0.0)
    return module


def dcgan_init_(module, std=0.02):
    """genc's `init NET(std: 0.02)` (compiler/src/check/init.rs), pytorch/examples' DCGAN
    weights_init extended to linear layers as the paper says ("all weights"): linear and
    convolution weights ~ N(0, std), their biases 0; norm scales ~ N(1, std), shifts 0."""
    for m in module.modules():
        with torch.no_grad():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)) and m.weight is not None:
                m.weight.normal_(1.0, std)
                m.bias.zero_()
    return module


def running_stats_option(p):
    p.add_argument(
        "--no-running-stats",
        dest="running_stats",
        action="store_false",
        help="skip batch norm's running-statistics update (genc updates them, as PyTorch does by default)",
    )


def parse_args(description, extra=None):
    p = argparse.ArgumentParser(description=description)
    if extra:
        extra(p)
    p.add_argument("--steps", type=int, default=200, help="timed training steps (default 200)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=None, help="override the spec's batch size")
    p.add_argument("--data", default=os.environ.get("GENC_DATA", DEFAULT_DATA))
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile each phase's forward and loss"
    )
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (default \"default\")")
    p.add_argument(
        "--samples",
        default=None,
        help="after training, write --n-samples samples as a float32 .npy [N, C, H, W] in the "
        "data's range (for `genc eval --images`)",
    )
    p.add_argument("--n-samples", type=int, default=10000, help="how many samples --samples writes")
    args = p.parse_args()
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def setup(args):
    """Threads and seeds; returns the torch.device to train on."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch.cuda.is_available() is False")
    return torch.device(args.device)


def compiled(fn, args):
    """`fn` (a function or module) through torch.compile when --compile is given, else `fn`."""
    if not args.compile:
        return fn
    return torch.compile(fn, mode=args.compile_mode)


def sync(args):
    if args.device == "cuda":
        torch.cuda.synchronize()


def write_samples(args, sample):
    """`sample(n)` (a tensor [n, C, H, W]) in runs of 500, eval mode and no gradients, saved as
    float32 .npy at args.samples."""
    parts = []
    with torch.no_grad():
        for start in range(0, args.n_samples, 500):
            parts.append(sample(min(500, args.n_samples - start)).float().cpu().numpy())
    tmp = args.samples + ".tmp.npy"
    np.save(tmp, np.concatenate(parts).astype(np.float32))
    os.replace(tmp, args.samples)


def run(model, args, batch, step, extra=None, sample=None):
    """Runs `step()` (which returns {loss name: float}) warmup + steps times; prints the JSON
    (with `extra`'s keys added; `extra` may be a function returning them). With --samples, then writes `sample(n)`'s images."""
    first = None
    w0 = time.perf_counter()
    for _ in range(args.warmup):
        losses = step()
        first = first or losses
    sync(args)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        losses = step()
        first = first or losses
    sync(args)
    seconds = time.perf_counter() - t0
    out = {
        "model": model,
        "steps": args.steps,
        "seconds": round(seconds, 4),
        "steps_per_s": round(args.steps / seconds, 4) if seconds > 0 else None,
        "final_losses": {k: round(v, 5) for k, v in losses.items()},
        "first_losses": {k: round(v, 5) for k, v in first.items()},
        "batch": batch,
        "threads": args.threads,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "device": args.device,
        "compile": args.compile_mode if args.compile else False,
        "warmup_seconds": round(t0 - w0, 4),
    }
    if args.device == "cuda":
        out["gpu"] = torch.cuda.get_device_name()
        out["max_memory_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    # `extra` may be a function, for figures known only after training (a test loss)
    out.update((extra() if callable(extra) else extra) or {})
    if args.samples:
        if sample is None:
            sys.exit(f"--samples: the {model} peer has no sampler")
        write_samples(args, sample)
        out["samples"] = args.samples
    print(json.dumps(out), flush=True)
