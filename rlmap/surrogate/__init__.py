"""A neural surrogate of the cost model: datasets, the network and its training, and surrogate-guided
search.  Registers the "surrogate" mapper."""

from typing import Any

from rlmap.search.driver import register_mapper


def _surrogate_mapper() -> Any:
    from rlmap.surrogate.search import SurrogateMapper  # torch loads only when the mapper is asked for

    return SurrogateMapper()


register_mapper("surrogate", _surrogate_mapper)
