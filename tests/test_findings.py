"""The findings' standalone repro scripts (experiments/findings/) against the installed peer
libraries: each exits 1 and says "defect present" while the defect is there, so a fix upstream
fails this test (then the finding moves to "fixed" in experiments/findings/README.md)."""

import subprocess
import sys
from pathlib import Path

import pytest

FINDINGS = Path(__file__).resolve().parents[1] / "experiments" / "findings"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("script, libraries", [
    pytest.param(script, libraries, marks=pytest.mark.peers(*libraries), id=script)
    for script, libraries in [("dpmpp_3m_second_order.py", ("diffusers", "k-diffusion")),
                              ("deis_3_float32_coefficients.py", ("diffusers",)),
                              ("flow_mode_stops_short.py", ("diffusers",)),
                              ("zero_snr_clamp_not_monotone.py", ("diffusers",)),
                              ("ipndm_first_step.py", ("diffusers",)),
                              ("fractional_timesteps_truncated.py", ("diffusers",)),
                              ("cosine_dpmsolver_final_step.py", ("diffusers",)),
                              ("karras_ve_schedule_squared.py", ("diffusers",)),
                              ("ddim_trailing_prev_timestep.py", ("diffusers",))]])
def test_each_finding_reproduces_on_the_installed_library(script, libraries):
    result = subprocess.run([sys.executable, str(FINDINGS / script)], capture_output=True,
                            text=True, timeout=300, cwd=FINDINGS)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "defect present" in result.stdout
    if "k-diffusion" in libraries:  # the script measured both libraries, not one
        assert "k-diffusion sample_dpmpp_3m_sde" in result.stdout


def test_the_index_lists_every_repro_script():
    index = (FINDINGS / "README.md").read_text()
    for script in FINDINGS.glob("*.py"):
        assert f"`{script.name}`" in index, script.name
