"""PyTorch peer of specs/wgan_gp.gen: one training step of the spec, timed (CPU or CUDA).

Mirrors (specs/wgan_gp.gen, nf = 64, Z = 128, lambda = 10, n_critic = 5, 28x28x1):
  net G: linear(4*nf*7*7) (bias) -> reshape [B, 256, 7, 7] -> batch_norm -> relu
         -> conv_transpose2d(128, kernel 4, stride 2, pad 1) (bias) -> batch_norm -> relu
         -> conv_transpose2d(1, kernel 4, stride 2, pad 1) (bias) -> tanh
  net D: conv2d(64, 5, 2, 2) -> leaky_relu(0.2)                                   28 -> 14
         -> conv2d(128, 5, 2, 2) -> layer_norm -> leaky_relu(0.2)                  14 -> 7
         -> conv2d(256, 5, 2, 2) -> layer_norm -> leaky_relu(0.2)                   7 -> 4
         -> flatten -> linear(1) -> reshape [B]          (every conv with bias)
     genc's layer_norm normalises each sample over [C, H, W] with an elementwise affine of
     shape [C, H, W] (eps 1e-5) = nn.LayerNorm([C, H, W]).
  loss critic: fake = stop_grad(G(z)); eps ~ uniform([B, 1, 1, 1]);
         x_hat = eps * x + (1 - eps) * fake;
         g = grad(sum(D(x_hat)), x_hat)                (create_graph: differentiated again)
         gp = mean((norm(g, over: [C, H, W]) - 1)^2)   (norm = sqrt(sum g^2) per sample)
         w = mean(D(x)) - mean(D(fake)); return -w + lambda * gp
  loss generator: -mean(D(G(z)))
  train: fashion_mnist(range: [-1, 1]); batch B = 64;
         adam(D / G, lr 1e-4, betas (0.0, 0.9)) (genc eps 1e-8, no weight decay, = torch's);
         step { repeat n_critic { minimize critic(x, normal([B, Z])) with opt_d }
                minimize generator(normal([B, Z])) with opt_g }
         -> five critic updates, each on a fresh data batch and fresh z / eps, then one G update.
Init: genc's defaults: conv/conv_transpose/linear weight and bias ~ U(+-1/sqrt(fan_in)),
  batch norm and layer norm weight 1, bias 0 (common.genc_init_).

Deliberate details:
  - stop_grad(G(z)) is G under torch.no_grad() (G in train mode: batch statistics).
  - Each phase differentiates only its optimizer's parameters, as genc's plan does:
    backward(inputs=D's parameters) in the critic phase (so no gradient is accumulated into
    the interpolates x_hat) and backward(inputs=G's parameters) in the generator phase.
  - Batch norm in G: batch statistics with the running-statistics update, as genc does;
    --no-running-stats skips the update.
  - Reported losses, like genc's metrics, average the five critic runs of the last step.
  - Not timed, as in a genc step: `sample` and `checkpoint` cadences.
  - --compile compiles G for the no_grad fake batch, the critic's Wasserstein term
    mean(D(x)) - mean(D(fake)) and the whole generator phase. The gradient penalty stays eager:
    torch.compile's AOTAutograd does not support double backward, and the penalty's gradient
    (create_graph) is differentiated again by the critic's update.
"""

import torch
import torch.nn.functional as F
from torch import nn

import common

C, H, W, Z = 1, 28, 28, 128
H4, W4 = H // 4, W // 4
NF = 64
LAMBDA = 10.0
N_CRITIC = 5
SPEC_BATCH = 64
LR, BETAS = 1e-4, (0.0, 0.9)


class G(nn.Module):
    def __init__(self, running):
        super().__init__()
        self.project = nn.Linear(Z, 4 * NF * H4 * W4)
        self.bn0 = nn.BatchNorm2d(4 * NF, eps=1e-5, momentum=0.1, track_running_stats=running)
        self.up1 = nn.ConvTranspose2d(4 * NF, 2 * NF, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(2 * NF, eps=1e-5, momentum=0.1, track_running_stats=running)
        self.up2 = nn.ConvTranspose2d(2 * NF, C, 4, stride=2, padding=1)

    def forward(self, z):
        h = self.project(z).reshape(z.shape[0], 4 * NF, H4, W4)
        h = F.relu(self.bn0(h))
        h = F.relu(self.bn1(self.up1(h)))
        return torch.tanh(self.up2(h))


class D(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(C, NF, 5, stride=2, padding=2)
        self.conv1 = nn.Conv2d(NF, 2 * NF, 5, stride=2, padding=2)
        self.ln1 = nn.LayerNorm([2 * NF, 7, 7], eps=1e-5)
        self.conv2 = nn.Conv2d(2 * NF, 4 * NF, 5, stride=2, padding=2)
        self.ln2 = nn.LayerNorm([4 * NF, 4, 4], eps=1e-5)
        self.out = nn.Linear(4 * NF * 4 * 4, 1)

    def forward(self, x):
        h = F.leaky_relu(self.conv0(x), 0.2)
        h = F.leaky_relu(self.ln1(self.conv1(h)), 0.2)
        h = F.leaky_relu(self.ln2(self.conv2(h)), 0.2)
        return self.out(h.flatten(1)).reshape(x.shape[0])


def main():
    args = common.parse_args(__doc__.splitlines()[0], common.running_stats_option)
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    data = common.Batches(common.fashion_mnist("train", -1.0, 1.0, args.data), batch, args.seed, dev)
    g, d = common.genc_init_(G(args.running_stats)).to(dev), common.genc_init_(D()).to(dev)
    opt_d = torch.optim.Adam(d.parameters(), lr=LR, betas=BETAS)
    opt_g = torch.optim.Adam(g.parameters(), lr=LR, betas=BETAS)
    d_params, g_params = list(d.parameters()), list(g.parameters())

    def wasserstein(x, fake):
        return d(x).mean() - d(fake).mean()

    def generator(z):
        return -d(g(z)).mean()

    g_fake = common.compiled(g, args)
    wasserstein = common.compiled(wasserstein, args)
    generator = common.compiled(generator, args)

    def critic_phase():
        x = data.next()
        z = torch.randn(batch, Z, device=dev)
        with torch.no_grad():
            fake = g_fake(z)
        eps = torch.rand(batch, 1, 1, 1, device=dev)
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        gp = ((torch.linalg.vector_norm(grad, dim=(1, 2, 3)) - 1) ** 2).mean()
        w = wasserstein(x, fake)
        loss = -w + LAMBDA * gp
        opt_d.zero_grad(set_to_none=True)
        loss.backward(inputs=d_params)
        opt_d.step()
        return loss.item(), w.item(), gp.item()

    def step():
        sums = [0.0, 0.0, 0.0]
        for _ in range(N_CRITIC):
            sums = [s + v for s, v in zip(sums, critic_phase())]
        z = torch.randn(batch, Z, device=dev)
        loss_g = generator(z)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward(inputs=g_params)
        opt_g.step()
        critic, wdist, gp = (s / N_CRITIC for s in sums)
        return {"critic": critic, "wdist": wdist, "gradient_penalty": gp, "generator": loss_g.item()}

    def sample(n):
        g.eval()
        try:
            return g(torch.randn(n, Z, device=dev))
        finally:
            g.train()

    counts = {"G": sum(p.numel() for p in g.parameters()), "D": sum(p.numel() for p in d.parameters())}
    common.run("wgan_gp", args, batch, step, {"params": counts}, sample)


if __name__ == "__main__":
    main()
