"""PyTorch's scaled_dot_product_attention on the shapes bench_cuda.c times
(q, k, v [1, 16, N, d]), for the ratio ours / PyTorch in the same run."""
import json
import time

import torch
import torch.nn.functional as F

H = 16
for dt, name in ((torch.float16, "F16"), (torch.bfloat16, "BF16")):
    for d in (64, 128):
        n = 1024
        while n <= 16384:
            for causal in (False, True):
                q, k, v = (torch.randn(1, H, n, d, device="cuda", dtype=dt) for _ in range(3))
                for _ in range(3):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                torch.cuda.synchronize()
                reps, t0 = 0, time.perf_counter()
                while True:
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    reps += 1
                    if reps % 4 == 0:
                        torch.cuda.synchronize()
                    if reps >= 8 and time.perf_counter() - t0 > 0.2:
                        break
                torch.cuda.synchronize()
                s = (time.perf_counter() - t0) / reps
                flops = 4.0 * n * n * d * H * (0.5 if causal else 1.0)
                print(json.dumps({"case": f"torch sdpa {name} d{d} n{n} "
                                          f"{'causal' if causal else 'noncausal'}",
                                  "ms": round(s * 1e3, 4),
                                  "tflops": round(flops / s / 1e12, 2)}))
            n *= 2
