"""The demo's tool: a weather forecast service that works offline.

Forecasts are fixed per city (typical weather for the season the guides describe) and dated
from today, so the demo needs no network and every run tells the same story.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# city -> (sky, low °C, high °C, chance of rain) for the next three days
_FORECASTS: dict[str, tuple[tuple[str, int, int, float], ...]] = {
    "Lisbon": (("light rain", 12, 17, 0.7), ("showers", 11, 16, 0.55), ("sunny", 12, 19, 0.1)),
    "Oslo": (("snow", -5, 0, 0.6), ("cloudy", -7, -2, 0.2), ("clear and cold", -9, -4, 0.05)),
    "Tokyo": (("rain", 19, 24, 0.8), ("humid with showers", 20, 26, 0.6), ("cloudy", 21, 27, 0.3)),
    "Reykjavik": (("wind and rain", 2, 6, 0.75), ("gales", 1, 5, 0.6), ("cloudy", 0, 4, 0.3)),
    "Edinburgh": (("drizzle", 7, 12, 0.6), ("sunny spells", 6, 13, 0.2), ("drizzle", 8, 12, 0.5)),
    "Barcelona": (("sunny", 22, 29, 0.05), ("sunny", 23, 30, 0.0), ("hazy sun", 22, 28, 0.1)),
}

DESCRIPTION = "Three-day weather forecast for a city (demo service, works offline)."
PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 3}},
    "required": ["city"],
}


def known(city: str) -> bool:
    return city in _FORECASTS


def forecast(city: str, days: int = 3, today: dt.date | None = None) -> dict[str, Any]:
    """The forecast for ``city`` from ``today``; ``LookupError`` for a city it does not cover."""
    if city not in _FORECASTS:
        raise LookupError(f"no forecast for {city!r} (covered: {', '.join(sorted(_FORECASTS))})")
    start = today or dt.date.today()
    out = []
    for offset, (sky, low, high, rain) in enumerate(_FORECASTS[city][: max(1, min(days, 3))]):
        date = start + dt.timedelta(days=offset)
        out.append(
            {
                "date": date.isoformat(),
                "day": date.strftime("%A"),
                "sky": sky,
                "low_c": low,
                "high_c": high,
                "rain_chance": rain,
            }
        )
    return {"city": city, "units": "metric", "days": out}


def headline(report: dict[str, Any]) -> str:
    """One line for the step title: ``Lisbon: light rain, 12 to 17 °C``."""
    first = report["days"][0]
    return f"{report['city']}: {first['sky']}, {first['low_c']} to {first['high_c']} °C"
