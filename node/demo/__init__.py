"""``oml-node demo``: the whole OML story on a local multi-process testnet (docs/operator.md)."""

from .net import DemoError as DemoError
from .settings import DemoSettings as DemoSettings
from .story import Story as Story
from .story import run_demo as run_demo
