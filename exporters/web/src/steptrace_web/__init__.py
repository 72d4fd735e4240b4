"""steptrace-web: watch the Steps of an LLM app stream live into a browser.

    import steptrace_web
    channel = steptrace_web.serve()        # http://127.0.0.1:<port>/ ; every Step shows up there
    print(channel.url)
    ...
    channel.stop()

or, with a standalone server started by the ``steptrace-web`` command::

    steptrace_web.forward("http://127.0.0.1:8765/")
"""

from ._channel import WebChannel, serve
from ._forward import Forwarder, forward
from ._security import new_token
from ._version import __version__
from ._visibility import VISIBILITY_MODES

__all__ = [
    "VISIBILITY_MODES",
    "Forwarder",
    "WebChannel",
    "__version__",
    "forward",
    "new_token",
    "serve",
]
