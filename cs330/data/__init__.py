"""Datasets, samplers and synthetic tasks. See ``cs330.data.root`` for where data lives.

- ``omniglot``   Omniglot from the torchvision zips, cached as one uint8 tensor; course/Vinyals splits
- ``episodes``   N-way K-shot Q-query meta-batches by tensor indexing (``EpisodeSampler``)
- ``movielens``  MovieLens 100K and latest-small as tensors; splits; implicit interactions
- ``text``       SST-2, AG News, clothing reviews, bAbI, XSum; k-shot sampling
- ``synthetic``  embedded defaults needing no files: glyphs, low-rank ratings, regression tasks
- ``spec``       a dataset's specification (files, checksums, URLs, counts): each dataset module declares its ``SPECS``
- ``download``, ``registry``, ``cli``  verified downloads; the registry collects the modules' ``SPECS``; ``cs330 data``
"""

from cs330.data.episodes import Episode, EpisodeSampler, NonExclusiveEpisodeSampler
from cs330.data.movielens import Interactions, MovieLens
from cs330.data.omniglot import Omniglot
from cs330.data.root import DataNotFoundError, cache_root, data_root
from cs330.data.synthetic import make_glyphs, make_ratings, sample_regression_tasks, sample_tagged_sinusoids

__all__ = [
    "DataNotFoundError", "Episode", "EpisodeSampler", "Interactions", "MovieLens", "NonExclusiveEpisodeSampler", "Omniglot",
    "cache_root", "data_root", "make_glyphs", "make_ratings", "sample_regression_tasks",
    "sample_tagged_sinusoids",
]
