"""A CleanRL-style single-file PPO over EdgeSplit's native VectorEnv, with action masks.

The native VectorEnv steps every copy in one batched call. CleanRL's loop expects the
episode end and the next episode's first observation on the same step, so the env is made
with ``autoreset_mode="SAME_STEP"``. Run: ``python cleanrl_ppo.py --steps 100000``.
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import edgesplit.envs  # noqa: F401

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=100_000)
p.add_argument("--num-envs", type=int, default=8)
p.add_argument("--num-steps", type=int, default=32)
p.add_argument("--scenario", default="default")
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(args.seed)

envs = gym.make_vec(
    "edgesplit/SplitOffload-v1",
    num_envs=args.num_envs,
    scenario=args.scenario,
    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
)
nvec = envs.single_action_space.nvec  # [S, J, L, L] per device, tiled
obs_dim = envs.single_observation_space.shape[0]


class Agent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(obs_dim, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh()
        )
        self.actor = nn.Linear(128, int(nvec.sum()))
        self.critic = nn.Linear(128, 1)

    def value(self, x):
        return self.critic(self.body(x)).squeeze(-1)

    def act(self, x, mask, action=None):
        h = self.body(x)
        logits = self.actor(h).masked_fill(~mask, -1e8)  # masked choices get no probability
        dists = [torch.distributions.Categorical(logits=lg) for lg in logits.split(list(nvec), -1)]
        if action is None:
            action = torch.stack([d.sample() for d in dists], -1)
        logp = torch.stack([d.log_prob(a) for d, a in zip(dists, action.T, strict=True)], -1).sum(
            -1
        )
        ent = torch.stack([d.entropy() for d in dists], -1).sum(-1)
        return action, logp, ent, self.critic(h).squeeze(-1)


agent = Agent()
opt = torch.optim.Adam(agent.parameters(), lr=3e-4, eps=1e-5)
E, T = args.num_envs, args.num_steps
obs_b = torch.zeros(T, E, obs_dim)
mask_b = torch.zeros(T, E, int(nvec.sum()), dtype=torch.bool)
act_b = torch.zeros(T, E, len(nvec), dtype=torch.long)
logp_b, rew_b, done_b, val_b = (torch.zeros(T, E) for _ in range(4))

obs, info = envs.reset(seed=args.seed)
obs, mask = torch.tensor(obs), torch.tensor(info["action_mask"])
done = torch.zeros(E)
steps, returns = 0, []
while steps < args.steps:
    for t in range(T):
        obs_b[t], mask_b[t], done_b[t] = obs, mask, done
        with torch.no_grad():
            a, logp, _, v = agent.act(obs, mask)
        act_b[t], logp_b[t], val_b[t] = a, logp, v
        o, r, term, trunc, info = envs.step(a.numpy())
        rew_b[t] = torch.tensor(r, dtype=torch.float32)
        obs, mask = torch.tensor(o), torch.tensor(info["action_mask"])
        done = torch.tensor(term | trunc, dtype=torch.float32)
        returns.append(float(np.mean(r)))
        steps += E
    with torch.no_grad():  # generalised advantage estimation (gamma 0.99, lambda 0.95)
        adv, last, nv = torch.zeros(T, E), 0.0, agent.value(obs)
        for t in reversed(range(T)):
            nonterm = 1.0 - (done if t == T - 1 else done_b[t + 1])
            nxt = nv if t == T - 1 else val_b[t + 1]
            delta = rew_b[t] + 0.99 * nxt * nonterm - val_b[t]
            adv[t] = last = delta + 0.99 * 0.95 * nonterm * last
        ret = adv + val_b
    b = {
        k: x.reshape(T * E, *x.shape[2:])
        for k, x in dict(o=obs_b, m=mask_b, a=act_b, lp=logp_b, adv=adv, ret=ret).items()
    }
    for _ in range(4):  # epochs
        for idx in torch.randperm(T * E).split(64):
            _, lp, ent, v = agent.act(b["o"][idx], b["m"][idx], b["a"][idx])
            ratio = (lp - b["lp"][idx]).exp()
            ad = (b["adv"][idx] - b["adv"][idx].mean()) / (b["adv"][idx].std() + 1e-8)
            pg = torch.max(-ad * ratio, -ad * ratio.clamp(0.8, 1.2)).mean()
            loss = pg + 0.5 * ((v - b["ret"][idx]) ** 2).mean() - 0.01 * ent.mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            opt.step()
envs.close()
print(
    f"trained {steps} steps; mean reward, first {T} vs last {T} steps: "
    f"{np.mean(returns[:T]):.3f} -> {np.mean(returns[-T:]):.3f}"
)
