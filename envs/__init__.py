"""EdgeSplit environments: one batched simulator core under Gymnasium, VectorEnv and
PettingZoo faces."""
