"""torchrun entry point of the restart test: `clipvae-studio` itself, except that in the first
attempt rank $KILL_RANK sends itself SIGKILL before step $KILL_STEP (a crash at a known step, so
the test does not race the run)."""
import os
import signal
import sys

from clipvae_studio.core.distributed_train import DistributedTrainer, restart_count

KILL_RANK, KILL_STEP = int(os.environ["KILL_RANK"]), int(os.environ["KILL_STEP"])
_train_step = DistributedTrainer._train_step


def _train_step_or_die(self):
    if restart_count() == 0 and self.rank == KILL_RANK and self.step_count == KILL_STEP:
        os.kill(os.getpid(), signal.SIGKILL)
    return _train_step(self)


DistributedTrainer._train_step = _train_step_or_die

if __name__ == "__main__":
    from clipvae_studio.cli import main

    sys.exit(main(sys.argv[1:]))
