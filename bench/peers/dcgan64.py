"""PyTorch peer of specs/dcgan64.gen: one training step of the spec, timed (CPU or CUDA).

Mirrors (specs/dcgan64.gen = pytorch/examples dcgan/main.py; nz = Z = 100, ngf = ndf = 64,
nc = C = 3, 64x64, no bias anywhere):
  net G: z [B, 100, 1, 1]
         -> conv_transpose2d(512, kernel 4, stride 1, pad 0) -> batch_norm -> relu       1 -> 4
         -> up(256) -> up(128) -> up(64)    up = conv_transpose2d(co, 4, 2, 1) -> bn -> relu
                                                                               4 -> 8 -> 16 -> 32
         -> conv_transpose2d(3, 4, 2, 1) -> tanh                                       32 -> 64
  net D: conv2d(64, 4, 2, 1) -> leaky_relu(0.2)                                       64 -> 32
         -> down(128) -> down(256) -> down(512)  down = conv2d(co, 4, 2, 1) -> bn -> leaky 0.2
                                                                              32 -> 16 -> 8 -> 4
         -> conv2d(1, 4, 1, 0) -> sigmoid -> reshape [B]                                4 -> 1
  loss discriminator: fake = stop_grad(G(z)); bce(D(x), ones) + bce(D(fake), zeros)
         (two separate D calls: D's batch norm sees the real and the fake batch separately)
  loss generator: bce(D(G(z)), ones)
  train: folder(path: "data/celeba", size: 64, range: [-1, 1]) (RGB: genc's folder source
         takes 3 channels unless `channels:` says otherwise); batch B = 128;
         adam(D / G, lr 2e-4, betas (0.5, 0.999)) (genc eps 1e-8, no weight decay, = torch's);
         step { minimize discriminator(x, normal([B, Z, 1, 1])) with opt_d
                minimize generator(normal([B, Z, 1, 1])) with opt_g }   (a fresh z per phase)
Init: `init G(std: 0.02)`, `init D(std: 0.02)`: pytorch/examples' weights_init, conv and
  conv_transpose weights ~ N(0, 0.02), batch norm weight ~ N(1, 0.02), bias 0
  (common.dcgan_init_).
bce is genc's: -mean(y log(max(p, 1e-12)) + (1 - y) log(max(1 - p, 1e-12))) (as in vae.py).
G has 3,576,704 parameters, D 2,765,568 (the spec header's counts; checked at start).

Data: --data DIR reads the PNG files directly in DIR (sorted by name, as genc does), each
resized to 64x64 (bilinear; genc uses a triangle filter) and converted to RGB, with Pillow;
the default DIR is the spec's `data/celeba`. `--data random` instead draws 1280 images
uniformly in [-1, 1] (no Pillow needed). The images live in memory either way, so what they
hold does not change the work of a step: throughput is the same.

Deliberate details:
  - stop_grad(G(z)) is G under torch.no_grad() (G still in train mode: batch statistics).
  - `minimize generator with opt_g` differentiates only G's parameters (genc's plan takes the
    gradient with respect to the optimizer's parameters alone): loss.backward(inputs=G's
    parameters).
  - Batch norm: batch statistics in training with the running-statistics update (momentum
    0.1, unbiased variance), as genc does; --no-running-stats skips the update.
  - Not timed, as in a genc step: `sample` and `checkpoint` cadences.
  - --compile compiles each phase's forward and loss, and G for the no_grad fake batch.
"""

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import common

C, H, W, Z = 3, 64, 64, 100
NGF = NDF = 64
SPEC_BATCH = 128
LR, BETAS = 2e-4, (0.5, 0.999)
SPEC_DATA = "data/celeba"
RANDOM_IMAGES = 1280


def bn(c, running):
    return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1, track_running_stats=running)


class G(nn.Module):
    def __init__(self, running):
        super().__init__()
        chans = [NGF * 8, NGF * 4, NGF * 2, NGF]
        layers = [nn.ConvTranspose2d(Z, chans[0], 4, stride=1, padding=0, bias=False)]
        layers += [bn(chans[0], running), nn.ReLU()]
        for ci, co in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(ci, co, 4, stride=2, padding=1, bias=False)]
            layers += [bn(co, running), nn.ReLU()]
        layers += [nn.ConvTranspose2d(NGF, C, 4, stride=2, padding=1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


class D(nn.Module):
    def __init__(self, running):
        super().__init__()
        chans = [NDF, NDF * 2, NDF * 4, NDF * 8]
        layers = [nn.Conv2d(C, NDF, 4, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2)]
        for ci, co in zip(chans, chans[1:]):
            layers += [nn.Conv2d(ci, co, 4, stride=2, padding=1, bias=False)]
            layers += [bn(co, running), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(NDF * 8, 1, 4, stride=1, padding=0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).reshape(x.shape[0])


def bce(p, y, tiny=1e-12):
    lp = torch.log(torch.clamp(p, min=tiny))
    lq = torch.log(torch.clamp(1.0 - p, min=tiny))
    return -(y * lp + (1.0 - y) * lq).mean()


def images(folder, seed):
    """The training images as a float32 tensor [N, 3, 64, 64] in [-1, 1] (see the docstring)."""
    if folder == "random":
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1.0, 1.0, size=(RANDOM_IMAGES, C, H, W)).astype(np.float32)
        return torch.from_numpy(x)
    if not os.path.isdir(folder):
        sys.exit(f"{folder}: no such folder of PNG images (or give --data random)")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
    if not names:
        sys.exit(f"{folder}: it holds no .png files (or give --data random)")
    from PIL import Image

    out = np.empty((len(names), C, H, W), dtype=np.float32)
    for i, name in enumerate(names):
        with Image.open(os.path.join(folder, name)) as im:
            im = im.convert("RGB")
            if im.size != (W, H):
                im = im.resize((W, H), Image.BILINEAR)
            out[i] = np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return torch.from_numpy(-1.0 + out * 2.0)


def main():
    args = common.parse_args(__doc__.splitlines()[0], common.running_stats_option)
    running = args.running_stats
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    folder = SPEC_DATA if args.data == common.DEFAULT_DATA else args.data
    data = common.Batches(images(folder, args.seed), batch, args.seed, dev)
    g, d = common.dcgan_init_(G(running)), common.dcgan_init_(D(running))
    counts = (sum(p.numel() for p in g.parameters()), sum(p.numel() for p in d.parameters()))
    assert counts == (3_576_704, 2_765_568), f"parameter counts {counts} differ from the spec's"
    g, d = g.to(dev), d.to(dev)
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    g_params = list(g.parameters())
    ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)

    def discriminator(x, fake):
        return bce(d(x), ones) + bce(d(fake), zeros)

    def generator(z):
        return bce(d(g(z)), ones)

    g_fake = common.compiled(g, args)
    discriminator = common.compiled(discriminator, args)
    generator = common.compiled(generator, args)

    def step():
        # minimize discriminator(x, normal([B, Z, 1, 1])) with opt_d
        x = data.next()
        z = torch.randn(batch, Z, 1, 1, device=dev)
        with torch.no_grad():
            fake = g_fake(z)
        loss_d = discriminator(x, fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # minimize generator(normal([B, Z, 1, 1])) with opt_g
        z = torch.randn(batch, Z, 1, 1, device=dev)
        loss_g = generator(z)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=g_params)
        opt_g.step()
        return {"discriminator": loss_d.item(), "generator": loss_g.item()}

    common.run("dcgan64", args, batch, step, {"params": {"G": counts[0], "D": counts[1]}})


if __name__ == "__main__":
    main()
