"""``default`` with batteries, shared by the battery and backend tests."""

from __future__ import annotations

from edgesplit.sim.scenario import load_scenario


def mixed_batteries() -> dict:
    """``default`` with batteries on two groups and mains power on the third: small ones
    starting empty on the Pis (heads masked and replaced most slots), budgets on the Nanos
    (a deficit that grows and is paid back), mains power on the Orins."""
    d = load_scenario("default").to_dict()
    for g in d["devices"]:
        if g["name"].startswith("pi"):
            g["battery"] = {"capacity_j": 3.0, "initial_charge_j": 0.0, "harvest_w": 1.0}
        elif g["name"].startswith("nano"):
            g["battery"] = {
                "capacity_j": 30.0,
                "initial_charge_j": [0.5, 4.0],
                "harvest_w": 2.0,
                "budget_w": 1.0,
            }
    return d
