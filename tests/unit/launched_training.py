"""A training target for `distributed.launch` in the tests: one process meets a fault (SIGTERM,
or sudden death) at its n-th training forward pass."""

import itertools
import os
import signal

from fma_genre import train as train_module


def train_with_fault(fault: str, rank: int, forward: int, **kwargs) -> None:
    if int(os.environ["RANK"]) == rank:
        real_load_classifier = train_module.load_classifier
        forwards = itertools.count(1)

        def load_classifier_with_fault(*args, **load_kwargs):
            model = real_load_classifier(*args, **load_kwargs)

            def hook(module, inputs, output):
                if module.training and next(forwards) == forward:
                    if fault == "sigterm":
                        os.kill(os.getpid(), signal.SIGTERM)
                    else:
                        os._exit(3)

            model.register_forward_hook(hook)
            return model

        train_module.load_classifier = load_classifier_with_fault
    train_module.train(**kwargs)
