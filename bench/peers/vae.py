"""PyTorch peer of specs/vae.gen: one training step of the spec, timed (CPU or CUDA).

Mirrors (specs/vae.gen):
  dims ... N = 500, Z = 20                 -> sizes below
  net Enc: flatten |> linear(N) |> tanh, then two heads linear(Z) (mu, logvar) from the same h
  net Dec: linear(N) |> tanh |> linear(C*H*W) |> sigmoid, reshaped to [B, 1, 28, 28]
  loss neg_elbo: eps ~ normal([B, Z]); z = mu + exp(0.5 * logvar) * eps;
      rec = bce(x_hat, x) * (C*H*W)        (bce = mean over all elements, see below)
      kl  = mean(kl_normal(mu, logvar))    (0.5 * sum_Z(exp(lv) + mu^2 - 1 - lv) per example)
      return rec + kl
  train: data fashion_mnist(split: "train", range: [0, 1]); batch B = 100;
      optimizer adagrad([Enc, Dec], lr: 0.02)  (genc: eps 1e-10, zero initial accumulator,
      no lr decay = torch.optim.Adagrad's defaults); step { minimize neg_elbo(x) with opt }
Init: every linear weight and bias ~ U(+-1/sqrt(fan_in)) as genc's `linear` (common.genc_init_).

Deliberate details:
  - bce is written out as genc defines it (compiler/src/check/builtins.rs `bce`):
    -mean(y log(max(p, 1e-12)) + (1 - y) log(max(1 - p, 1e-12))). F.binary_cross_entropy clamps
    the logs at -100 instead; the values differ only when p saturates, the cost is the same order.
  - Not timed, as in a genc step: the `eval`, `sample` and `checkpoint` cadences.
  - --compile compiles neg_elbo's forward and loss (eps is drawn outside, eagerly).
"""

import torch
from torch import nn

import common

C, H, W, N, Z = 1, 28, 28, 500, 20
SPEC_BATCH = 100
LR = 0.02


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(C * H * W, N)
        self.mu = nn.Linear(N, Z)
        self.logvar = nn.Linear(N, Z)

    def forward(self, x):
        h = torch.tanh(self.hidden(x.flatten(1)))
        return self.mu(h), self.logvar(h)


class Dec(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(Z, N)
        self.out = nn.Linear(N, C * H * W)

    def forward(self, z):
        p = torch.sigmoid(self.out(torch.tanh(self.hidden(z))))
        return p.reshape(z.shape[0], C, H, W)


def bce(p, y, tiny=1e-12):
    lp = torch.log(torch.clamp(p, min=tiny))
    lq = torch.log(torch.clamp(1.0 - p, min=tiny))
    return -(y * lp + (1.0 - y) * lq).mean()


def kl_normal(mu, logvar):
    return 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(1)


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    data = common.Batches(common.fashion_mnist("train", 0.0, 1.0, args.data), batch, args.seed, dev)
    enc, dec = common.genc_init_(Enc()).to(dev), common.genc_init_(Dec()).to(dev)
    opt = torch.optim.Adagrad(list(enc.parameters()) + list(dec.parameters()), lr=LR)

    def neg_elbo(x, eps):
        mu, logvar = enc(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        x_hat = dec(z)
        rec = bce(x_hat, x) * (C * H * W)
        kl = kl_normal(mu, logvar).mean()
        return rec + kl, rec, kl

    neg_elbo = common.compiled(neg_elbo, args)

    def step():
        x = data.next()
        eps = torch.randn(x.shape[0], Z, device=dev)
        loss, rec, kl = neg_elbo(x, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"neg_elbo": loss.item(), "reconstruction": rec.item(), "kl_divergence": kl.item()}

    n_params = sum(p.numel() for p in list(enc.parameters()) + list(dec.parameters()))
    common.run("vae", args, batch, step, {"params": n_params})


if __name__ == "__main__":
    main()
