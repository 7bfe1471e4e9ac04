"""Every GPU model a shipped facility preset names is one the job twin knows: facility-sim's jobs carry the
preset's name (`JobSpec.gpu_model`), and an unknown one sends every job of that site to the DLQ."""

from __future__ import annotations

import pytest

from twin.core.facility import load_facility_spec
from twin.core.facility.spec import PRESETS_DIR
from twin.jobs.domain.hardware import GPUS, gpu_spec

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_gpu_model_resolves(preset):
    spec = load_facility_spec(preset)
    for name, model in spec.gpu_models.items():
        assert gpu_spec(name).power_limit_w == pytest.approx(model.max_w), name


def test_the_gb200_hall_gpu_is_the_gb200_entry():
    assert gpu_spec("B200-GB200") is GPUS["gb200"]
