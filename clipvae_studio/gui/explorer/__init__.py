"""The latent explorer: decoded image, CLIP scores, decision map, steering, gallery, clusters."""
import threading


def use_one_torch_thread_here() -> None:
    """Run torch with one intra-op thread on the calling (GUI) thread only.

    Canvas decodes run on the GUI thread one point at a time; with several threads each tiny op
    waits for the trainer's spinning threads (measured: ~14 ms instead of ~2 ms per move while
    training). torch.set_num_threads sets the calling thread's count AND the default for threads
    that start using torch later (the trainer's), so the default is put back from a throwaway
    thread, which leaves this thread's own setting alone.
    """
    import torch

    default = torch.get_num_threads()
    torch.ones(64).add_(1)  # make sure this thread's lazy thread-count set-up has happened
    torch.set_num_threads(1)
    restore = threading.Thread(target=torch.set_num_threads, args=(default,), daemon=True)
    restore.start()
    restore.join()


def install_explorer(window) -> None:
    """Add the explorer's docks to a MainWindow and connect them; the controller is window.explorer.
    Needs no torch: the window calls use_one_torch_thread_here() once it has loaded torch."""
    from .explorer import Explorer

    window.explorer = Explorer(window)
