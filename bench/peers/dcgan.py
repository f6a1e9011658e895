"""PyTorch peer of specs/dcgan.gen: one training step of the spec, timed (CPU or CUDA).

Mirrors (specs/dcgan.gen, ngf = ndf = 64, Z = 100, 28x28x1):
  net G: linear(ngf*4*7*7, bias: false) -> reshape [B, 256, 7, 7] -> batch_norm -> relu
         -> conv_transpose2d(128, kernel 4, stride 2, pad 1, bias: false) -> batch_norm -> relu
         -> conv_transpose2d(1, kernel 4, stride 2, pad 1) (with bias) -> tanh
  net D: conv2d(64, 4, 2, 1) (bias) -> leaky_relu(0.2)
         -> conv2d(128, 4, 2, 1, bias: false) -> batch_norm -> leaky_relu(0.2)
         -> flatten -> linear(1) -> reshape [B]           (logits)
  loss discriminator: fake = stop_grad(G(z));
         bce_logits(D(x), ones) + bce_logits(D(fake), zeros)   (two separate D calls, so D's
         batch norm sees the real and the fake batch separately, as in the spec)
  loss generator: bce_logits(D(G(z)), ones)
  train: fashion_mnist(range: [-1, 1]); batch B = 128;
         adam(D / G, lr 2e-4, betas (0.5, 0.999)) (genc eps 1e-8, no weight decay, = torch's);
         step { minimize discriminator(x, 2*uniform([B, Z]) - 1) with opt_d
                minimize generator(2*uniform([B, Z]) - 1) with opt_g }   (a fresh z per phase)
Init: `init G(std: 0.02)`, `init D(std: 0.02)` (the paper's): linear/conv/conv_transpose
  weights ~ N(0, 0.02), biases 0, batch norm weight ~ N(1, 0.02), bias 0 (common.dcgan_init_).
bce_logits = mean(softplus(z) - z*y) = F.binary_cross_entropy_with_logits (same formula).

Deliberate details:
  - stop_grad(G(z)) is G under torch.no_grad() (G still in train mode: batch statistics).
  - `minimize generator with opt_g` differentiates only G's parameters (genc's plan takes the
    gradient with respect to the optimizer's parameters alone), so the backward pass is
    loss.backward(inputs=G's parameters): no gradient for D's weights is computed.
  - Batch norm: batch statistics in training with the running-statistics update (momentum
    0.1, unbiased variance), as genc does; --no-running-stats skips the update.
  - Not timed, as in a genc step: `sample` and `checkpoint` cadences.
  - --compile compiles each phase's forward and loss, and G for the no_grad fake batch.
"""

import torch
import torch.nn.functional as F
from torch import nn

import common

C, H, W, Z = 1, 28, 28, 100
H4, W4 = H // 4, W // 4
NGF = NDF = 64
SPEC_BATCH = 128
LR, BETAS = 2e-4, (0.5, 0.999)


class G(nn.Module):
    def __init__(self, running):
        super().__init__()
        self.project = nn.Linear(Z, NGF * 4 * H4 * W4, bias=False)
        self.bn0 = nn.BatchNorm2d(NGF * 4, eps=1e-5, momentum=0.1, track_running_stats=running)
        self.up1 = nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(NGF * 2, eps=1e-5, momentum=0.1, track_running_stats=running)
        self.up2 = nn.ConvTranspose2d(NGF * 2, C, 4, stride=2, padding=1)

    def forward(self, z):
        h = self.project(z).reshape(z.shape[0], NGF * 4, H4, W4)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.tanh(self.up2(h))


class D(nn.Module):
    def __init__(self, running):
        super().__init__()
        self.conv0 = nn.Conv2d(C, NDF, 4, stride=2, padding=1)
        self.conv1 = nn.Conv2d(NDF, NDF * 2, 4, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(NDF * 2, eps=1e-5, momentum=0.1, track_running_stats=running)
        self.out = nn.Linear(NDF * 2 * H4 * W4, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv0(x), 0.2)
        h = F.leaky_relu(self.bn1(self.conv1(h)), 0.2)
        return self.out(h.flatten(1)).reshape(x.shape[0])


def main():
    args = common.parse_args(__doc__.splitlines()[0], common.running_stats_option)
    running = args.running_stats
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    data = common.Batches(common.fashion_mnist("train", -1.0, 1.0, args.data), batch, args.seed, dev)
    g, d = common.dcgan_init_(G(running)).to(dev), common.dcgan_init_(D(running)).to(dev)
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    g_params = list(g.parameters())
    ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)

    def discriminator(x, fake):
        return F.binary_cross_entropy_with_logits(d(x), ones) + F.binary_cross_entropy_with_logits(
            d(fake), zeros
        )

    def generator(z):
        return F.binary_cross_entropy_with_logits(d(g(z)), ones)

    g_fake = common.compiled(g, args)
    discriminator = common.compiled(discriminator, args)
    generator = common.compiled(generator, args)

    def step():
        # minimize discriminator(x, 2 * uniform([B, Z]) - 1) with opt_d
        x = data.next()
        z = 2 * torch.rand(batch, Z, device=dev) - 1
        with torch.no_grad():
            fake = g_fake(z)
        loss_d = discriminator(x, fake)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # minimize generator(2 * uniform([B, Z]) - 1) with opt_g
        z = 2 * torch.rand(batch, Z, device=dev) - 1
        loss_g = generator(z)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=g_params)
        opt_g.step()
        return {"discriminator": loss_d.item(), "generator": loss_g.item()}

    def sample(n):
        g.eval()
        try:
            return g(2 * torch.rand(n, Z, device=dev) - 1)
        finally:
            g.train()

    counts = {"G": sum(p.numel() for p in g.parameters()), "D": sum(p.numel() for p in d.parameters())}
    common.run("dcgan", args, batch, step, {"params": counts}, sample)


if __name__ == "__main__":
    main()
