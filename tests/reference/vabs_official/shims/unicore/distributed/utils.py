"""Stand-ins for `unicore.distributed.utils`."""


def get_data_parallel_rank():
    """Replaces `unicore.distributed.utils.get_data_parallel_rank`. Exact for a single
    process (rank 0); imported by the binding-site dataset module but not called by
    `PocketDataset`."""
    return 0
