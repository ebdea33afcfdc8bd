"""What many tests share, by concern: running the real CLI (processes), small corpora and
settings defined once (texts), small models and checkpoints (models), checks of what
generation draws (generation), small training runs (runs), a real server (server).

Tests build what they need themselves (never from ../shared): corpus() writes a small text,
random_model() and gated_model() give models with O(1) weights whose recurrence contracts,
saved_small_model() a checkpoint the CLI tests sample from; Server a real `rnncore serve`
on a free loopback port.  `from support import X` finds X in whichever module holds it.
"""
from .generation import *   # noqa: F401,F403
from .models import *       # noqa: F401,F403
from .processes import *    # noqa: F401,F403
from .runs import *         # noqa: F401,F403
from .server import *       # noqa: F401,F403
from .texts import *        # noqa: F401,F403
