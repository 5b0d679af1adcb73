"""3. Warm handler cost: main(func.HttpRequest(...)) in a loop, in this process, against the floor's main."""

from __future__ import annotations

import time
from typing import Any, Callable

from bench.common import (FLOOR, FUNCTIONS, REST_FUNCTIONS, WEBHOOKS, Table, Variant, app, app_settings,
                          environment, http_request, load_main, median, naive, request_spec)

SECTION = "3. warm handler cost (in-process calls/s)"


def _rate(call: Callable[[], Any], seconds: float) -> float:
    """Calls per second of call() over at least `seconds` (batches, so the clock is read rarely)."""
    done, batch = 0, 1
    started = time.perf_counter()
    while True:
        for _ in range(batch):
            call()
        done += batch
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed
        batch = min(batch * 2, 256)


def _invoker(variant: Variant) -> Callable[[], Any]:
    main = load_main(variant)
    spec = request_spec(variant.function)
    expected = variant.expected_status
    response = main(http_request(spec))  # first call outside the timing: imports, client creation
    if response.status_code != expected:
        raise RuntimeError(f"{variant.label}: answered {response.status_code}, expected {expected}: "
                           f"{response.get_body()[:300]!r}")

    def call() -> None:
        main(http_request(spec))  # a fresh HttpRequest per call, as the worker builds one per invocation

    return call


class _Multi(dict):
    """Form parameters as the app hands them to RequestValidator (getall)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def _components() -> dict[str, Callable[[], Any]]:
    """Reference costs of the SDK primitives every webhook needs, whatever the implementation."""
    from twilio.request_validator import RequestValidator
    from twilio.twiml.messaging_response import MessagingResponse

    from bench.common import AUTH_TOKEN, sms_webhook_form

    spec = request_spec("sms_webhook")
    params: dict[str, list[str]] = _Multi()
    for key, value in sms_webhook_form():
        params.setdefault(key, []).append(value)
    validator = RequestValidator(AUTH_TOKEN)
    signature = spec["headers"]["x-twilio-signature"]
    if not validator.validate(spec["url"], params, signature):
        raise RuntimeError("reference signature does not validate")

    def twiml() -> None:
        response = MessagingResponse()
        response.message("Hey, thanks for the ping! Twilio and Azure rock!")
        response.to_xml(xml_declaration=True)

    return {"twilio RequestValidator.validate alone": lambda: validator.validate(spec["url"], params, signature),
            "twilio MessagingResponse + to_xml alone": twiml}


def run(table: Table, sandbox: Any, rounds: int, seconds: float) -> None:
    variants = [FLOOR] + [app(f) for f in FUNCTIONS] + [naive(f) for f in FUNCTIONS]
    rates: dict[str, list[float]] = {}
    with environment(app_settings(sandbox.base_url)):
        calls = {v.label: _invoker(v) for v in variants}
        calls.update(_components())
        names = list(calls)
        for i in range(rounds):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:  # interleaved rounds: noise hits every variant alike
                rates.setdefault(name, []).append(_rate(calls[name], seconds))

    def cost(name: str) -> float:
        return 1 / median(rates[name])

    floor_cost = cost(FLOOR.label)

    def fmt(name: str) -> tuple[str, str]:
        values = rates[name]
        return (f"{median(values):,.0f}/s ({_us(1 / median(values))})", f"{min(values):,.0f} – {max(values):,.0f}/s")

    table.add(SECTION, "floor (trivial main)", *fmt(FLOOR.label), "1.00× floor cost")
    for function in WEBHOOKS + REST_FUNCTIONS:
        for variant in (app(function), naive(function)):
            name = variant.label
            times_floor = cost(name) / floor_cost
            text = f"{times_floor:,.1f}× floor cost"
            goal, met = "", None
            if function in WEBHOOKS and variant.kind == "app":
                goal, met = "≤ 3× floor cost", times_floor <= 3
            if function in REST_FUNCTIONS and variant.kind == "app":
                naive_cost = cost(naive(function).label)
                text += f"; {cost(name) / naive_cost:.2f}× naive cost"
                goal, met = "(report) vs floor and naive", None
            table.add(SECTION, name, *fmt(name), text, goal, met)
    for name in _components():
        table.add(SECTION, f"(reference) {name}", *fmt(name), f"{cost(name) / floor_cost:,.1f}× floor cost")
    table.note(f"Warm handler cost: median of {rounds} interleaved rounds of ≥ {seconds:g} s each per variant, "
               f"a new func.HttpRequest per call; make_call/send_sms include a loopback HTTP round trip to the "
               f"Twilio sandbox running in the same process. Ratios compare cost per call (1 / rate).")


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 1e-3 else f"{seconds * 1e3:,.2f} ms"
