"""The PyTorch CPU peer of `make bench-kernels`: the same shapes, 2 threads, median of reps.

Run with a venv that has torch: `python runtime/benches/torch_peer.py`.
"""
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def bench(f, reps=7):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        calls = 0
        while calls == 0 or time.perf_counter() - start < 0.2:
            f()
            calls += 1
        times.append((time.perf_counter() - start) / calls)
    times.sort()
    return times[len(times) // 2]


for m, k, n in [(512, 512, 512), (1024, 1024, 1024), (12544, 1024, 128)]:
    a, b = torch.rand(m, k), torch.rand(k, n)
    out = torch.empty(m, n)
    s = bench(lambda: torch.matmul(a, b, out=out))
    print(f"matmul {m}x{k}x{n}: {s * 1e3:.2f} ms, {2 * m * k * n / s / 1e9:.1f} GFLOP/s")

# DCGAN-28 (4x4, pad 1) and WGAN-GP's critic (5x5, pad 2), batch 64, stride 2.
layers = [
    ("G conv_transpose2d 256->128 7->14", True, 1, (64, 256, 7, 7), (256, 128, 4, 4)),
    ("G conv_transpose2d 128->1 14->28", True, 1, (64, 128, 14, 14), (128, 1, 4, 4)),
    ("D conv2d 1->64 28->14", False, 1, (64, 1, 28, 28), (64, 1, 4, 4)),
    ("D conv2d 64->128 14->7", False, 1, (64, 64, 14, 14), (128, 64, 4, 4)),
    ("WGAN-GP D conv2d 1->64 k5 28->14", False, 2, (64, 1, 28, 28), (64, 1, 5, 5)),
    ("WGAN-GP D conv2d 64->128 k5 14->7", False, 2, (64, 64, 14, 14), (128, 64, 5, 5)),
    ("WGAN-GP D conv2d 128->256 k5 7->4", False, 2, (64, 128, 7, 7), (256, 128, 5, 5)),
]
total = 0.0
for i, (name, transposed, pad, xs, ws) in enumerate(layers):
    x = torch.rand(xs, requires_grad=True)
    w = torch.rand(ws, requires_grad=True)
    op = (lambda: F.conv_transpose2d(x, w, stride=2, padding=pad)) if transposed else (
        lambda: F.conv2d(x, w, stride=2, padding=pad))
    with torch.no_grad():
        fwd = bench(op)
    y = op()
    dy = torch.rand_like(y)
    bwd = bench(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True))
    if i < 4:
        total += fwd + bwd
    print(f"{name}: forward {fwd * 1e3:.2f} ms, backward (data + weight) {bwd * 1e3:.2f} ms")
print(f"DCGAN-28 conv layers, forward + backward, batch 64: {total * 1e3:.1f} ms")

n = 16 * 1024 * 1024
a, b, c = torch.rand(n), torch.rand(n), torch.rand(n)
out, tmp = torch.empty(n), torch.empty(n)


def fused():
    torch.mul(a, b, out=tmp)
    tmp.add_(c)
    torch.tanh(tmp, out=out)


s = bench(fused)
print(f"tanh(a*b+c), 16M f32, eager into preallocated outputs: {s * 1e3:.2f} ms, {16 * n / s / 1e9:.2f} GB/s")
x = torch.zeros(1)


def launches():
    for _ in range(1000):
        x.add_(1.0)


s = bench(launches)
print(f"launch overhead: {s / 1000 * 1e6:.1f} us per op (1000 x add_ on one element)")
