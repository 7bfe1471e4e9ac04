"""The console in a real headless browser (Debian's chromium driven by Selenium through chromedriver).

The console runs as its own process (`python -m twin.console`) against a fresh broker and a fresh
database with the power twin's tables; the test publishes to the real topics and writes rows the way
the power twin does, and looks only at what the browser shows: the floor plan has exactly one element
per rack of the preset, a power.state.v1 event for one rack changes that rack's element (value and
colour) and no other, a cooling.state.v1 event recolours it by temperature, a PDU, a CDU, a job and an
alert appear in their panels (pointing at the job outlines its racks), and the history chart draws the
stored site rows.

Needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages `chromium` and `chromium-driver`);
skipped, saying so, only when chromium is not installed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from e2e_support import Procs, wait_until
from google.protobuf.timestamp_pb2 import Timestamp

from twin.cooling.v1 import cooling_pb2 as cpb
from twin.core import db, topics
from twin.core.facility import build_inventory, load_facility_spec
from twin.core.kafka import EventProducer
from twin.jobs.v1 import jobs_pb2 as jpb
from twin.power.adapters.repository import MIGRATIONS_DIR as POWER_MIGRATIONS
from twin.power.v1 import power_pb2 as pb

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SITE = "su-h100"
WAIT_S = 30.0

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"{CHROMIUM} is not installed (Debian packages: chromium chromium-driver)"),
]


def ts(t: float) -> Timestamp:
    out = Timestamp()
    out.FromNanoseconds(int(t * 1e9))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(bootstrap: str, *items: tuple[topics.Topic, str, object]) -> None:
    async def run() -> None:
        async with EventProducer(bootstrap, source="test") as producer:
            for topic, key, msg in items:
                await producer.send(topic, key, msg)

    asyncio.run(run())


def prepare_database(url: str, site_rows: list[tuple[float, float, float]]) -> None:
    """The power twin's tables, with site rows (time, facility W, IT W) in power_state."""

    async def run() -> None:
        pool = await db.open_pool(url, max_size=1)
        try:
            await db.apply_migrations(pool, "power", POWER_MIGRATIONS)
            async with pool.connection() as conn:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO power_state (time, site_id, entity_id, scope, input_power_w, output_power_w,"
                        " loss_w, rating_w, utilization, source, message) VALUES (%s, %s, %s, %s, %s, %s, 0, 0, 0, 2, '')",
                        [(datetime.fromtimestamp(t, UTC), SITE, SITE, pb.POWER_SCOPE_SITE, p_in, p_out)
                         for t, p_in, p_out in site_rows])
                await conn.commit()
        finally:
            await pool.close()

    asyncio.run(run())


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_floor_plan_in_a_real_browser_follows_published_events(kafka, fresh_database, procs: Procs, browser) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    now = time.time()
    step = 15  # the chart's buckets for the last hour
    t0 = (int(now) // step) * step - 900
    prepare_database(fresh_database, [(t0, 1.30e6, 1.0e6), (t0 + 300, 1.25e6, 1.0e6), (t0 + 600, 1.2e6, 1.0e6)])
    port = free_port()
    console = procs.start("console", "twin.console", env={"CONSOLE_HTTP_PORT": str(port)})
    url = f"http://127.0.0.1:{port}"
    # the page is served only once every topic tail has found its end: nothing published after is missed
    wait_until(lambda: healthy(url) or console.popen.poll() is not None, 60, "the console to serve its page")
    assert console.alive(), console.log()

    browser.get(url)
    wait = WebDriverWait(browser, WAIT_S)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-live") == "1")

    expected = [r.rack_id for r in build_inventory(load_facility_spec("dgx-h100-su")).racks]
    racks = browser.find_elements(By.CSS_SELECTOR, "[data-rack]")
    assert [e.get_attribute("data-rack") for e in racks] == expected  # exactly one element per rack, in order
    target, other = "su1-0003", "su1-0004"
    el = browser.find_element(By.CSS_SELECTOR, f'[data-rack="{target}"]')
    other_el = browser.find_element(By.CSS_SELECTOR, f'[data-rack="{other}"]')
    before, other_before = el.value_of_css_property("background-color"), other_el.value_of_css_property("background-color")
    assert el.get_attribute("data-power-w") is None and "nodata" in el.get_attribute("class")

    publish(kafka, (topics.POWER_STATE, target, pb.PowerState(
        site_id=SITE, entity_id=target, scope=pb.POWER_SCOPE_RACK, state_time=ts(time.time()), input_power_w=36_000.0,
        output_power_w=35_000.0, loss_w=1_000.0, powered=True, source=pb.VALUE_SOURCE_MEASURED)))
    wait.until(lambda d: el.get_attribute("data-power-w") == "36000")
    assert el.get_attribute("data-value") == "36000" and "nodata" not in el.get_attribute("class")
    assert el.value_of_css_property("background-color") != before
    assert other_el.get_attribute("data-power-w") is None
    assert other_el.value_of_css_property("background-color") == other_before

    # colour by GPU temperature: the rack's cooling state drives it
    Select(browser.find_element(By.ID, "mode")).select_by_value("temp")
    wait.until(lambda d: "nodata" in el.get_attribute("class"))  # no cooling state yet
    publish(kafka, (topics.COOLING_STATE, target, cpb.CoolingState(
        site_id=SITE, entity_id=target, scope=cpb.COOLING_SCOPE_RACK, state_time=ts(time.time()),
        rack=cpb.RackCoolingDetail(max_gpu_temp_c=84.5, time_to_throttle_s=120.0))))
    wait.until(lambda d: el.get_attribute("data-value") == "84.5")
    assert el.get_attribute("data-temp-c") == "84.5" and el.get_attribute("data-ttt-s") == "120"
    hot = el.value_of_css_property("background-color")
    assert hot not in (before, other_before)

    # the panels: power chain, cooling (CDU), jobs (hovering one outlines its racks), alerts
    t = time.time()
    publish(kafka,
            (topics.POWER_STATE, "pdu-4", pb.PowerState(
                site_id=SITE, entity_id="pdu-4", scope=pb.POWER_SCOPE_PDU, state_time=ts(t), input_power_w=36_500.0,
                output_power_w=36_000.0, rating_w=50_000.0, headroom_w=14_000.0, utilization=0.72, powered=True)),
            (topics.COOLING_STATE, "cdu-su1-1", cpb.CoolingState(
                site_id=SITE, entity_id="cdu-su1-1", scope=cpb.COOLING_SCOPE_CDU, state_time=ts(t),
                cdu=cpb.CduDetail(up=False, heat_removed_w=0.0, supply_temp_c=21.0))),
            (topics.JOBS_STATE, "job-7", jpb.JobState(
                job_id="job-7", state_time=ts(t), status=jpb.JOB_STATUS_RUNNING, mfu=0.412, goodput_fraction=0.93,
                predicted_step_time_s=2.4, placement=jpb.Placement(node_ids=["su1-0003-n00", "su1-0006-n01"], n_gpus=16))),
            (topics.COOLING_ALERTS, "su1-0003", cpb.CoolingAlert(
                alert_id="c-1", site_id=SITE, entity_id="su1-0003", scope=cpb.COOLING_SCOPE_RACK,
                kind=cpb.ALERT_KIND_THROTTLE_PREDICTED, severity=cpb.SEVERITY_CRITICAL, alert_time=ts(t),
                time_to_throttle_s=120.0, message="8 GPUs throttle in 2 min")))
    steady = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def text_of(css: str):   # a panel may be drawn again between finding a row and reading it
        return steady.until(lambda d: (found := d.find_elements(By.CSS_SELECTOR, css)) and found[0].text)

    chain = text_of('#chain tr[data-entity="pdu-4"]')
    assert "36.0 kW" in chain and "50.0 kW" in chain and "14.0 kW" in chain
    assert "DOWN" in text_of('#cooling tr[data-entity="cdu-su1-1"]')
    job = text_of('#jobs tr[data-job="job-7"]')
    assert "41.2 %" in job and "93.0 %" in job

    def hover_job(d) -> bool:
        ActionChains(d).move_to_element(d.find_element(By.CSS_SELECTOR, '#jobs tr[data-job="job-7"]')).perform()
        return len(d.find_elements(By.CSS_SELECTOR, ".rack.hl")) == 2

    steady.until(hover_job)
    assert sorted(e.get_attribute("data-rack") for e in browser.find_elements(By.CSS_SELECTOR, ".rack.hl")) == [
        "su1-0003", "su1-0006"]
    assert "su1-0003: 8 GPUs throttle in 2 min" in text_of("#events li.sev-critical")

    # the power chart draws the three stored site rows (in three different buckets)
    line = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#chart-power polyline[data-series="site_w"]'))
    assert len(line[0].get_attribute("points").split()) == 3
    pue = browser.find_element(By.CSS_SELECTOR, '#chart-pue polyline[data-series="pue"]')
    assert len(pue.get_attribute("points").split()) == 3
    assert console.alive(), console.log()
