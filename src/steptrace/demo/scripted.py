"""The demo's stand-in for OpenAI: a local OpenAI-compatible server streaming a scripted answer.

Used when ``OPENAI_API_KEY`` is not set. The "model" reads the request the agent sent (the
question, the retrieved guides, the forecast), writes a short answer from them with a template,
and streams it back in word-piece tokens at a model-like pace, through the same HTTP + SSE wire
format as the real API, so the real ``openai`` client and its instrumentation do real work.
"""

from __future__ import annotations

import json
import re
from typing import Any

from steptrace.testing.llm_servers import OpenAIServer, RecordedRequest, Reply

MODEL = "scripted-travel-model"
#: Seconds before the first token (the model "reading" the prompt), then between tokens.
FIRST_TOKEN_DELAY_S = 0.35
TOKEN_DELAY_S = 0.03

_DOC_LINE = re.compile(r"^\[(\d+)\] ([^:]+): (.*)$")
_PIECE = re.compile(r" ?[^\W\d_]+| ?\d{1,3}| ?[^\w\s]|\s+")
#: Longer words are streamed in pieces of about this many letters, as a BPE vocabulary would.
_MAX_PIECE = 7


def parse_prompt(prompt: str) -> tuple[str, list[tuple[int, str, str]], dict[str, Any] | None]:
    """Question, numbered documents and forecast from the agent's user message."""
    question = ""
    docs: list[tuple[int, str, str]] = []
    report = None
    for line in prompt.splitlines():
        if line.startswith("Question: "):
            question = line.removeprefix("Question: ").strip()
        elif line.startswith("Forecast (get_weather): "):
            try:
                report = json.loads(line.removeprefix("Forecast (get_weather): "))
            except ValueError:
                report = None
        else:
            match = _DOC_LINE.match(line)
            if match:
                docs.append((int(match[1]), match[2], match[3]))
    return question, docs, report


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    return sentence.rstrip(".!?")


def _degrees(low: int, high: int) -> str:
    return f"{low} to {high} °C"


def compose_answer(
    question: str, docs: list[tuple[int, str, str]], report: dict[str, Any] | None
) -> str:
    """A short, grounded answer: advice from the forecast, then a tip from each of two guides."""
    sentences: list[str] = []
    asks_umbrella = "umbrella" in question.lower()
    if report and report.get("days"):
        city = report.get("city", "your destination")
        days = report["days"]
        wet = [d for d in days if d.get("rain_chance", 0) >= 0.5]
        snowy = any("snow" in d.get("sky", "") for d in days)
        coldest = min(d["low_c"] for d in days)
        warmest = max(d["high_c"] for d in days)
        if coldest <= 2:
            extra = " and boots with grip for the snow" if snowy else ""
            sentences.append(f"Pack for real cold in {city}: warm layers, a hat, gloves{extra}")
        elif wet and asks_umbrella:
            sentences.append("Yes, pack a compact umbrella")
        elif wet:
            sentences.append(f"Plan for rain in {city}: bring an umbrella or a light rain jacket")
        elif asks_umbrella:
            sentences.append("You can probably leave the umbrella at home")
        elif warmest >= 26:
            sentences.append(f"Expect heat in {city}: pack light clothes, a hat and sunscreen")
        else:
            sentences.append(f"The weather in {city} looks mild, so pack layers")
        first = days[0]
        falling = "snow" if "snow" in first["sky"] else "rain"
        forecast = (
            f"The forecast for {city}: {first['sky']} on {first['day']} "
            f"({round(first['rain_chance'] * 100)}% chance of {falling}, "
            f"{_degrees(first['low_c'], first['high_c'])})"
        )
        if len(days) > 1:
            second = days[1]
            forecast += f", then {second['sky']} on {second['day']}"
        sentences.append(forecast)
    elif docs:
        sentences.append("Here is what the travel guides suggest")
    else:
        sentences.append("I could not find a guide or a forecast for that, sorry")
    for number, _title, text in docs[:2]:
        sentences.append(f"{_first_sentence(text)} [{number}]")
    if report or docs:
        sentences.append("Have a great trip!")
    return " ".join(s if s.endswith(("!", ".")) else s + "." for s in sentences)


def tokenize(text: str) -> list[str]:
    """Word-piece tokens the way a chat model streams them (``" umbrell"``, ``"a"``, ``"."``)."""
    pieces: list[str] = []
    for piece in _PIECE.findall(text):
        letters = len(piece.lstrip(" "))
        if letters <= _MAX_PIECE + 1:
            pieces.append(piece)
            continue
        count = -(-letters // _MAX_PIECE)
        size = -(-len(piece) // count)
        pieces.extend(piece[i : i + size] for i in range(0, len(piece), size))
    if "".join(pieces) != text:  # the regex covers every character; never lose any
        return [text]
    return pieces


def reply_for(request: RecordedRequest) -> Reply:
    """The server's script: answer whatever the agent asked, from the prompt it sent."""
    body = request.body if isinstance(request.body, dict) else {}
    prompt = ""
    for message in body.get("messages") or ():
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            prompt = content if isinstance(content, str) else prompt
    question, docs, report = parse_prompt(prompt)
    answer = compose_answer(question, docs, report)
    return Reply(chunks=tokenize(answer), first_delay=FIRST_TOKEN_DELAY_S, delay=TOKEN_DELAY_S)


def start_server() -> OpenAIServer:
    """A running scripted server on 127.0.0.1 at a free port (``.base_url``, ``.close()``)."""
    return OpenAIServer(reply_for).start()  # type: ignore[return-value]
