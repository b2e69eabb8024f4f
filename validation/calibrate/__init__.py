"""`dnnsim calibrate`: measure op kinds on this machine and write a device profile.

What is measured: every op of the training graphs of the zoo networks at their validation
batches and a grid around them (half and double batch), and of synthetic networks that cover
other shapes (calibration_nets.py). Each network's training graph is *replayed* (replay.py):
its ops' ATen kernels run in step order on the tensors their producers made, so each op is
timed as it runs inside a step, with the cache and allocator state a step leaves it (ops timed
alone ran 5-20% faster than in a step). A point is an op's time in its network's median
replay round (journal.records_of_replay says why). Then the per-op framework overhead of a
whole step (autograd, the Python module, the optimizer's Python loop) is measured on a small
network, as its step minus its replay, and folded into every point: a point is "the time this
op adds to a step".

Each replay is appended to a partial file (journal.py) as it is done: an interrupted run keeps
what it measured and resumes from it. The profile is built from the partial file
(profile_build.py).
"""
