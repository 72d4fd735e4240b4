"""steptrace-panel: every steptrace Step, live, as a ``ChatStep`` card in a Panel chat.

```python
import panel as pn
import steptrace
import steptrace_panel


def respond(contents, user, instance):
    with steptrace.Step(name="search", type="tool") as step:   # sync, async or in threads
        step.output = search(contents)
    return "done"


chat = pn.chat.ChatInterface(callback=respond)
steptrace_panel.attach(chat)
chat.servable()
```
"""

from __future__ import annotations

from steptrace_panel._exporter import PanelExporter, attach, detach

__all__ = ["PanelExporter", "attach", "detach"]
