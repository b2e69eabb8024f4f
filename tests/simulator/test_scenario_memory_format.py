"""A scenario without memory_format keeps the workload's own layout: an imported model's
channels-last stamps (a ConvNeXt's permute-based blocks) stand, as simulate() keeps them;
memory_format given restamps every op."""
import pytest

pytest.importorskip("torch")

from simulator import Cluster  # noqa: E402
from simulator.api import simulate  # noqa: E402
from simulator.scenario import Scenario  # noqa: E402
from workloads import zoo  # noqa: E402

USER_FILE = '''
from tests.workloads.test_torch_import_channels_last import ConvNeXtStyle


def make():
    return ConvNeXtStyle()
'''


def test_an_imported_models_own_stamps_stand_unless_a_format_is_asked(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(USER_FILE)
    spec, options = f"{path}:make", {"input_shape": "3x64x64"}
    graph = zoo.get(spec, batch=32, **options)
    assert {op.attrs.get("memory_format") for op in graph if op.kind == "conv2d"} >= {"nhwc"}
    cluster = Cluster.build("v100", 1)

    def scenario(**extra):
        return Scenario.from_dict(dict(workload=spec, batch=32, hardware="v100",
                                       policy="sequential", precision="amp-fp16",
                                       workload_options=options, **extra))
    own = simulate(graph, cluster, precision="amp-fp16").iteration_time_s
    nchw = simulate(graph, cluster, precision="amp-fp16", memory_format="nchw").iteration_time_s
    assert own != nchw        # the stamps change what cuDNN runs, so the check can fail
    assert scenario().run().iteration_time_s == own
    assert "memory_format" not in scenario().to_dict()
    assert scenario(memory_format="nchw").run().iteration_time_s == nchw
