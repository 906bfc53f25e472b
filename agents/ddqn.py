"""Double DQN (van Hasselt et al., AAAI 2016), two ways.

* :class:`MaskedDDQN`, the ``ddqn`` of the registry: :class:`~edgesplit.agents.dqn_masked.MaskedDQN`
  with the double-Q target over the next state's allowed actions, ``y = r + gamma *
  Q_target(s', argmax_{a allowed} Q_online(s', a))``, trained on the batched sequential face
  with action masks.
* :class:`DDQN`, a small subclass of SB3's DQN for SB3 pipelines (no masks): only the TD
  target changes; everything else (replay, exploration, target updates, logging) is SB3's.

>>> import gymnasium as gym
>>> model = DDQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=10, seed=0)
>>> model.learn(64).num_timesteps
64
>>> MaskedDDQN.DOUBLE, MaskedDDQN.__mro__[1].DOUBLE
(True, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import DQN
from torch.nn import functional as F

from .dqn_masked import MaskedDQN

__all__ = ["DDQN", "MaskedDDQN"]


class MaskedDDQN(MaskedDQN):
    """:class:`~edgesplit.agents.dqn_masked.MaskedDQN` with the double-Q target (its
    ``double`` defaults to True)."""

    DOUBLE = True


class DDQN(DQN):
    """SB3 :class:`~stable_baselines3.DQN` with the double-Q target."""

    def td_target(self, data: Any) -> th.Tensor:
        """``r + gamma * (1 - done) * Q_target(s', argmax_a Q_online(s', a))``."""
        discounts = data.discounts if data.discounts is not None else self.gamma
        with th.no_grad():
            next_actions = self.q_net(data.next_observations).argmax(dim=1, keepdim=True)
            next_q = th.gather(self.q_net_target(data.next_observations), 1, next_actions)
            return data.rewards + (1 - data.dones) * discounts * next_q

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        losses = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            target = self.td_target(data)
            current = th.gather(self.q_net(data.observations), 1, data.actions.long())
            loss = F.smooth_l1_loss(current, target)
            losses.append(loss.item())
            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", float(np.mean(losses)))
