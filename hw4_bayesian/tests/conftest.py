import torch

torch.set_num_threads(1)  # small tensors: one thread is fastest and leaves the other core free
