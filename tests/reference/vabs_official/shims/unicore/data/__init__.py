"""Stand-ins for `unicore.data`."""
import numpy as np
import torch.utils.data
from torch.utils.data.dataloader import default_collate


class UnicoreDataset(torch.utils.data.Dataset):
    """Replaces `unicore.data.UnicoreDataset`: a torch Dataset with epoch hooks. Exact for
    this use: `set_epoch` is a no-op in the real class too; the batching helpers of the real
    class are not needed here."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def set_epoch(self, epoch):
        pass

    def ordered_indices(self):
        return np.arange(len(self), dtype=np.int64)


class BaseWrapperDataset(UnicoreDataset):
    """Replaces `unicore.data.BaseWrapperDataset`: wraps `dataset`, forwards item access,
    length, collation and `set_epoch` to it, as the real class does. Exact (no state beyond
    `self.dataset`)."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def __getitem__(self, index):
        return self.dataset[index]

    def __len__(self):
        return len(self.dataset)

    def collater(self, samples):
        if hasattr(self.dataset, "collater"):
            return self.dataset.collater(samples)
        return default_collate(samples)

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
