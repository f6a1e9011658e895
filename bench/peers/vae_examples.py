"""PyTorch peer of bench/quality/vae_examples.gen (pytorch/examples' VAE), trained for the
quality table: test -ELBO and prior samples.

Mirrors (bench/quality/vae_examples.gen, which follows pytorch/examples vae/main.py):
  Enc: flatten -> linear(400) -> relu -> (linear(20) mu, linear(20) logvar)
  Dec: linear(400) -> relu -> linear(784) -> sigmoid, reshaped to [B, 1, 28, 28]
  loss: -ELBO per example = bce summed over pixels + KL(N(mu, exp(logvar)) || N(0, I)),
        averaged over the batch (pytorch/examples sums over the batch: the same gradient
        direction, and Adam is insensitive to the scale)
  train: Fashion-MNIST in [0, 1], batch 128, Adam 1e-3, full batches of fresh permutations
Init: genc's (common.genc_init_), PyTorch's default family.

After --steps steps (10 epochs = 4680 at batch 128) it prints the JSON line of common.run with
`test_neg_elbo`: the mean -ELBO over the 10,000 test images, one eps draw per image (as genc's
`eval neg_elbo(x_test)`), and with --samples writes decoded prior draws.
"""

import torch
import torch.nn.functional as F
from torch import nn

import common

C, H, W, N, Z = 1, 28, 28, 400, 20
SPEC_BATCH = 128
LR = 1e-3


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(C * H * W, N)
        self.mu = nn.Linear(N, Z)
        self.logvar = nn.Linear(N, Z)

    def forward(self, x):
        h = F.relu(self.hidden(x.flatten(1)))
        return self.mu(h), self.logvar(h)


class Dec(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(Z, N)
        self.out = nn.Linear(N, C * H * W)

    def forward(self, z):
        p = torch.sigmoid(self.out(F.relu(self.hidden(z))))
        return p.reshape(z.shape[0], C, H, W)


def neg_elbo_per_example(enc, dec, x):
    mu, logvar = enc(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    p = dec(z).clamp(1e-12, 1 - 1e-12)
    rec = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).flatten(1).sum(1)
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(1)
    return rec + kl, rec, kl


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    data = common.Batches(common.fashion_mnist("train", 0.0, 1.0, args.data), batch, args.seed, dev)
    enc, dec = common.genc_init_(Enc()).to(dev), common.genc_init_(Dec()).to(dev)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=LR)

    def step():
        loss, rec, kl = (t.mean() for t in neg_elbo_per_example(enc, dec, data.next()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"neg_elbo": loss.item(), "reconstruction": rec.item(), "kl_divergence": kl.item()}

    def test_neg_elbo():
        x_test = common.fashion_mnist("test", 0.0, 1.0, args.data).to(dev)
        with torch.no_grad():
            total = sum(neg_elbo_per_example(enc, dec, x)[0].sum().item() for x in x_test.split(500))
        return round(total / x_test.shape[0], 4)

    def sample(n):
        return dec(torch.randn(n, Z, device=dev))

    n_params = sum(p.numel() for p in list(enc.parameters()) + list(dec.parameters()))
    extra = lambda: {"params": n_params, "test_neg_elbo": test_neg_elbo()}  # noqa: E731
    common.run("vae_examples", args, batch, step, extra, sample)


if __name__ == "__main__":
    main()
