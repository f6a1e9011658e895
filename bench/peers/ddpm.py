"""PyTorch peer of specs/ddpm.gen: one training step of the spec, timed (CPU or CUDA).

Mirrors (specs/ddpm.gen, T = 1000, F = 64, E = 64, E4 = 4E = 256, p_drop = 0.1, 28x28x1):
  consts: betas = linspace(1e-4, 0.02, T), alpha_bars = cumprod(1 - betas) (computed in f64,
         used in f32)
  block timestep_embedding(t): k = 0..E/2-1, freq = exp(-log(10000) k / (E/2 - 1)),
         arg = t[:, None] * freq[None, :], concat([sin(arg), cos(arg)], 1)          [B, E]
  block res(x [B, c, h, w], temb, co):
         y = conv2d(co, 3, pad 1)(silu(group_norm(NG)(x)))
         y = y + linear(co)(silu(temb)).reshape([B, co, 1, 1])
         y = conv2d(co, 3, pad 1)(dropout(p_drop)(silu(group_norm(NG)(y))))
         return x + y if c == co else conv2d(co, kernel 1)(x) + y
     genc's group_norm(NG) with NG = F / 2 = 32 groups and a per-channel affine (eps 1e-5)
     = nn.GroupNorm(32, c); every conv and linear has a bias;
     dropout is inverted dropout (x * keep / (1 - p)), as F.dropout.
  block down(x): conv2d(c, 3, stride 2, pad 1);  block up(x): nearest x2, conv2d(c, 3, pad 1)
  net UNet(x, t): temb = linear(E4)(silu(linear(E4)(timestep_embedding(t))))
         h0 = conv2d(F, 3, pad 1)(x)                            [B,  64, 28, 28]
         h1 = res(h0, 64); h2 = down(h1)                        [B,  64, 14, 14]
         h3 = res(h2, 128); h4 = down(h3)                       [B, 128,  7,  7]
         h5 = res(h4, 128); m = res(res(h5, 128), 128)
         u = res(cat[m, h5], 128); u = up(res(cat[u, h4], 128))          7 -> 14
         u = res(cat[u, h3], 128); u = up(res(cat[u, h2], 128))         14 -> 28
         u = res(cat[u, h1], 64); u = res(cat[u, h0], 64)
         return conv2d(C, 3, pad 1)(silu(group_norm(NG)(u)))
  loss simple(x0): t ~ randint([B], 0, T); eps ~ normal([B, C, H, W]);
         ab = alpha_bars[t]; x_t = sqrt(ab) x0 + sqrt(1 - ab) eps;
         mse(UNet(x_t, float(t)), eps)
  train: fashion_mnist(range: [-1, 1]); batch B = 128;
         adam(UNet, lr 2e-4, grad_clip 1.0) (eps 1e-8, no weight decay, = torch's), the global
         gradient norm clipped to 1 before the update (scale 1 / (norm + 1e-6) when the norm
         exceeds 1 = clip_grad_norm_); schedule constant(warmup: 5000): lr factor
         min(1, (t + 1) / 5000) at update t (0-based) = LambdaLR; ema UNet(decay: 0.9999):
         after each update avg = 0.9999 avg + 0.0001 p for every UNet parameter.
Init: genc's defaults: conv/linear weight and bias ~ U(+-1/sqrt(fan_in)), group norm weight 1,
  bias 0 (common.genc_init_).

Deliberate details:
  - t and eps are drawn outside the loss (eagerly, on the device), the dropout masks inside.
  - Not timed, as in a genc step: `sample` (the 1000-step reverse sampler) and `checkpoint`.
  - --compile compiles the loss (UNet forward, mse); clipping, Adam and the EMA stay eager.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

import common

C, H, W = 1, 28, 28
T, NF, E = 1000, 64, 64
E2, E4 = E // 2, 4 * E
NG = NF // 2  # group norm groups: 32
P_DROP = 0.1
SPEC_BATCH = 128
LR, GRAD_CLIP, WARMUP, EMA_DECAY = 2e-4, 1.0, 5000, 0.9999


class Res(nn.Module):
    """res(x: [B, c, h, w], temb, co) at side `side`."""

    def __init__(self, c, co, side):
        super().__init__()
        self.norm1 = nn.GroupNorm(NG, c, eps=1e-5)
        self.conv1 = nn.Conv2d(c, co, 3, padding=1)
        self.temb = nn.Linear(E4, co)
        self.norm2 = nn.GroupNorm(NG, co, eps=1e-5)
        self.conv2 = nn.Conv2d(co, co, 3, padding=1)
        self.skip = nn.Conv2d(c, co, 1) if c != co else None
        self.co = co

    def forward(self, x, temb):
        y = self.conv1(F.silu(self.norm1(x)))
        y = y + self.temb(F.silu(temb)).reshape(x.shape[0], self.co, 1, 1)
        y = self.conv2(F.dropout(F.silu(self.norm2(y)), P_DROP, training=self.training))
        return (x if self.skip is None else self.skip(x)) + y


def timestep_embedding(t):
    k = torch.arange(E2, device=t.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * k / (E2 - 1))
    arg = t.reshape(-1, 1) * freq.reshape(1, E2)
    return torch.cat([torch.sin(arg), torch.cos(arg)], 1)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        s1, s2, s4 = H, H // 2, H // 4
        self.temb1 = nn.Linear(E, E4)
        self.temb2 = nn.Linear(E4, E4)
        self.conv_in = nn.Conv2d(C, NF, 3, padding=1)
        self.res1 = Res(NF, NF, s1)
        self.down1 = nn.Conv2d(NF, NF, 3, stride=2, padding=1)
        self.res3 = Res(NF, 2 * NF, s2)
        self.down2 = nn.Conv2d(2 * NF, 2 * NF, 3, stride=2, padding=1)
        self.res5 = Res(2 * NF, 2 * NF, s4)
        self.mid1 = Res(2 * NF, 2 * NF, s4)
        self.mid2 = Res(2 * NF, 2 * NF, s4)
        self.up_res1 = Res(4 * NF, 2 * NF, s4)  # cat[m, h5]
        self.up_res2 = Res(4 * NF, 2 * NF, s4)  # cat[u, h4]
        self.up_conv1 = nn.Conv2d(2 * NF, 2 * NF, 3, padding=1)
        self.up_res3 = Res(4 * NF, 2 * NF, s2)  # cat[u, h3]
        self.up_res4 = Res(3 * NF, 2 * NF, s2)  # cat[u, h2]
        self.up_conv2 = nn.Conv2d(2 * NF, 2 * NF, 3, padding=1)
        self.up_res5 = Res(3 * NF, NF, s1)  # cat[u, h1]
        self.up_res6 = Res(2 * NF, NF, s1)  # cat[u, h0]
        self.norm_out = nn.GroupNorm(NG, NF, eps=1e-5)
        self.conv_out = nn.Conv2d(NF, C, 3, padding=1)

    def forward(self, x, t):
        temb = self.temb2(F.silu(self.temb1(timestep_embedding(t))))
        h0 = self.conv_in(x)
        h1 = self.res1(h0, temb)
        h2 = self.down1(h1)
        h3 = self.res3(h2, temb)
        h4 = self.down2(h3)
        h5 = self.res5(h4, temb)
        m = self.mid2(self.mid1(h5, temb), temb)
        u = self.up_res1(torch.cat([m, h5], 1), temb)
        u = self.up_res2(torch.cat([u, h4], 1), temb)
        u = self.up_conv1(F.interpolate(u, scale_factor=2, mode="nearest"))
        u = self.up_res3(torch.cat([u, h3], 1), temb)
        u = self.up_res4(torch.cat([u, h2], 1), temb)
        u = self.up_conv2(F.interpolate(u, scale_factor=2, mode="nearest"))
        u = self.up_res5(torch.cat([u, h1], 1), temb)
        u = self.up_res6(torch.cat([u, h0], 1), temb)
        return self.conv_out(F.silu(self.norm_out(u)))


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    dev = common.setup(args)
    batch = args.batch or SPEC_BATCH
    data = common.Batches(common.fashion_mnist("train", -1.0, 1.0, args.data), batch, args.seed, dev)
    unet = common.genc_init_(UNet()).to(dev)
    params = list(unet.parameters())
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    alpha_bars = torch.cumprod(1.0 - betas, 0).to(torch.float32).to(dev)
    opt = torch.optim.Adam(params, lr=LR)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / WARMUP))
    ema = [p.detach().clone() for p in params]

    def simple(x0, t, eps):
        ab = alpha_bars[t].reshape(-1, 1, 1, 1)
        x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
        return F.mse_loss(unet(x_t, t.to(torch.float32)), eps)

    simple = common.compiled(simple, args)

    def step():
        x0 = data.next()
        t = torch.randint(0, T, (batch,), device=dev)
        eps = torch.randn(batch, C, H, W, device=dev)
        loss = simple(x0, t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        sched.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - EMA_DECAY)
        return {"simple": loss.item()}

    common.run("ddpm", args, batch, step, {"params": sum(p.numel() for p in params)})


if __name__ == "__main__":
    main()
