"""Deterministic fault simulator for the consensus core (``python -m consensus.sim``)."""

from .app import SimApp as SimApp
from .byzantine import BadBlocks as BadBlocks
from .byzantine import Equivocate as Equivocate
from .byzantine import RandomVotes as RandomVotes
from .byzantine import Silent as Silent
from .byzantine import SplitBrain as SplitBrain
from .byzantine import Strategy as Strategy
from .runner import SimConfig as SimConfig
from .runner import SimResult as SimResult
from .runner import Simulation as Simulation
from .runner import run_simulation as run_simulation
from .runner import sim_params as sim_params
from .world import NetworkConditions as NetworkConditions
