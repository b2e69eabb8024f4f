"""validate never writes its table or its measured steps over the measured-steps CSV it
scores: one error line, exit 2, the file as it was."""
from __future__ import annotations

from pathlib import Path

from simulator.cli import main

PROFILE = Path(__file__).resolve().parents[3] / "validation" / "measured" / "cpu_profile.toml"
STEPS = "network,batch,mode,measured_s\nlenet5,64,train,0.007\n"


def test_validate_never_writes_over_its_measured_steps(tmp_path, capsys):
    steps = tmp_path / "steps.csv"
    steps.write_text(STEPS)
    for flag in ("--csv", "--save-measured"):
        assert main(["validate", "--measured", str(steps), "--profile", str(PROFILE),
                     flag, str(steps)]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {str(steps)!r} is a file this run reads" in err
        assert err.count("\n") == 1 and steps.read_text() == STEPS
