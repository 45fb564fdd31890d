"""Assignment (warm-up): the forward and backward passes of ReLU and Linear.

Write the methods that raise ``NotImplementedError`` with plain array code (NumPy's
API on the arrays you are given), then check your work:

    python -m pytest              # every test you are given
    python -m pytest -m task1     # ReLU only

Do not use the library's own layers (``minitorch_alexnet.nn.ReLU``, ``nn.Linear``,
their functions in ``nn/activation.py`` and ``nn/linear.py``): a submission that
subclasses, imports or calls them scores 0 on that layer's task.
"""

from __future__ import annotations

from typing import Any

from minitorch_alexnet.nn import Module, Parameter, init


class ReLU(Module):
    """y = max(x, 0), elementwise; any input shape."""

    def forward(self, x: Any) -> Any:
        """x -> y = max(x, 0). Keep what backward needs with self.save_for_backward(name=...)."""
        # BEGIN SOLUTION
        self.save_for_backward(positive=x > 0)
        return x * (x > 0)
        # END SOLUTION

    def backward(self, grad_out: Any) -> Any:
        """dL/dy -> dL/dx, x's shape: the gradient passes where the input was positive.
        self.saved() returns what forward saved, as a dict."""
        # BEGIN SOLUTION
        return grad_out * self.saved()["positive"]
        # END SOLUTION


class Linear(Module):
    """y = x W^T + b, for x (N, in_features): weight W (out_features, in_features), bias b
    (out_features,)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.fan_in_uniform((out_features, in_features), in_features))
        self.bias = Parameter(init.fan_in_uniform((out_features,), in_features)) if bias else None

    def forward(self, x: Any) -> Any:
        """x (N, in_features) -> y (N, out_features)."""
        # BEGIN SOLUTION
        self.save_for_backward(x=x)
        y = x @ self.weight.data.T
        return y if self.bias is None else y + self.bias.data
        # END SOLUTION

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, out_features) -> dL/dx (N, in_features); adds dL/dW and dL/db to the
        parameters' gradients with .accumulate_grad(...) (gradients add up, as in PyTorch)."""
        # BEGIN SOLUTION
        x = self.saved()["x"]
        self.weight.accumulate_grad(grad_out.T @ x)
        if self.bias is not None:
            self.bias.accumulate_grad(grad_out.sum(axis=0))
        return grad_out @ self.weight.data
        # END SOLUTION
