"""The suite's shared rules live in a plugin, so that tests can load it into a pytest of their own."""

import os

from helpers import quiz

# The quiz shows options in an order drawn from a seed (helpers/quiz.py). The suite always uses the one the
# stored outputs were recorded with (`make execute` sets the same), whatever a student set for their own
# sessions, so that the kernels it starts (nbval, the browser test) print what the recorded outputs show.
os.environ[quiz.SEED_VARIABLE] = str(quiz.RECORDED_SEED)
quiz.seed(quiz.RECORDED_SEED)  # this process imported the quiz before the line above

pytest_plugins = ["helpers.pytest_rules"]
