"""The two optimizers, written without torch.optim.Optimizer: its methods import torch._dynamo on first use, 3 s
of CPU in every training process (a third of a small list's whole run) for a compiler this project does not use.
AdamW runs torch's own fused kernel, so its steps equal torch.optim.AdamW(fused=True)'s bit for bit, and both keep
torch's state_dict format: a checkpoint from either loads into the other."""

from __future__ import annotations

from collections import defaultdict

import torch


class Optimizer:
    """One group of parameters with its hyperparameters (group["lr"] is set by the schedule before each step),
    and a state per parameter."""

    def __init__(self, params, **hyperparameters):
        self.param_groups = [dict(hyperparameters, params=list(params))]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def state_dict(self) -> dict:
        """torch's format: each parameter's state under its index, and the groups with indices for parameters."""
        index, groups = {}, []
        for group in self.param_groups:
            ids = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": {index[p]: dict(s) for p, s in self.state.items()}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        saved = state_dict["param_groups"]
        if [len(g["params"]) for g in saved] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the saved optimizer state is for other parameters")
        params = {i: p for g, s in zip(self.param_groups, saved) for i, p in zip(s["params"], g["params"])}
        self.state = {params[i]: {k: self.placed(k, v, params[i]) for k, v in s.items()}
                      for i, s in state_dict["state"].items()}
        for group, s in zip(self.param_groups, saved):
            group.update({k: v for k, v in s.items() if k != "params"})

    def placed(self, key: str, value, param: torch.Tensor):
        """A saved state value on its parameter's device, as torch.optim places it."""
        if not isinstance(value, torch.Tensor):
            return value
        if key == "step":
            return value.to(dtype=torch.float32, device=param.device)  # the fused kernel's step: float32, on device
        return value.to(dtype=param.dtype if param.is_floating_point() else value.dtype, device=param.device)


class LectureSGD(Optimizer):
    """Plain SGD written as the lecture writes it, p += -lr * grad: the product is rounded before the sum,
    which torch.optim.SGD's fused p.add_(grad, alpha=-lr) does not do, so only this reproduces its digits."""

    def __init__(self, params, lr: float, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, weight_decay=weight_decay)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            torch._foreach_add_(params, torch._foreach_mul(grads, -group["lr"]))


class AdamW(Optimizer):
    """Adam with decoupled weight decay, in torch's fused kernel: one call per device and dtype for all the
    parameters (5x faster on the CPU than a loop over them)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2):
        # torch's flags too, though only the first four are read here: torch.optim.AdamW reading this state
        # back takes its defaults for missing ones, and decoupled_weight_decay's is False (Adam's L2)
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=False,
                         maximize=False, foreach=None, capturable=False, differentiable=False, fused=True,
                         decoupled_weight_decay=True)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            batches = defaultdict(lambda: ([], [], [], [], []))  # (device, dtype) -> params, grads, m, v, steps
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p not in self.state:
                    self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                     "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                     "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                s = self.state[p]
                for kept, value in zip(batches[p.device, p.dtype], (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"])):
                    kept.append(value)
            beta1, beta2 = group["betas"]
            for params, grads, exp_avgs, exp_avg_sqs, steps in batches.values():
                torch._foreach_add_(steps, 1)
                torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                                    beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                    maximize=False, grad_scale=None, found_inf=None)
