"""The whole graph over the demo landscape, against the simulator's ground truth."""

from decimal import Decimal

import pytest
from support import warehouse

pytestmark = pytest.mark.slow


def test_orders_and_gmv_per_channel_and_day_are_exact(pipeline, ground_truth):
    with warehouse(pipeline) as con:
        rows = con.execute(
            "SELECT activity_date, channel, orders, gmv, discount, sessions "
            "FROM channel.channel_daily_kpis"
        ).fetchall()
    found = {(str(d), c): (o, g, disc, s) for d, c, o, g, disc, s in rows}
    expected = {
        (day, channel): (v["orders"], Decimal(v["gmv"]), Decimal(v["discount"]), v["sessions"])
        for day, channels in ground_truth["channels"].items()
        for channel, v in channels.items()
        if v["orders"] or v["sessions"]
    }
    assert found == expected
