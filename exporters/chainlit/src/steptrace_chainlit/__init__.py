"""steptrace-chainlit: every steptrace Step, live, as a Chainlit step in the user's session.

```python
import chainlit as cl
import steptrace
import steptrace_chainlit

steptrace_chainlit.enable()


@cl.on_message
async def main(message: cl.Message):
    with steptrace.Step(name="search", type="tool") as step:   # also from worker threads
        step.output = search(message.content)
```
"""

from __future__ import annotations

from steptrace_chainlit._exporter import ChainlitExporter, disable, enable

__all__ = ["ChainlitExporter", "disable", "enable"]
