"""Import coverage: every classification architecture of torchvision's model zoo, built
without weights on the meta device, imported at 224x224 and at the smallest square input
PyTorch accepts, with PyTorch's own FLOP count (torch.utils.flop_counter: convolutions and
matrix products) within 2%. The architectures that stay out are listed with what they need;
a strict xfail fails the test when one of them starts to import, so the list stays true.

    python tests/workloads/torchvision_zoo.py     # prints the coverage figure
"""
import pytest

torch = pytest.importorskip("torch")

from tests.workloads import torchvision_zoo as zoo  # noqa: E402

TVM = zoo.models()
NAMES = zoo.classifiers(TVM) if TVM is not None else []

# What each architecture that does not import needs (the first refusal the import lists);
# none today.
OUT_OF_SCOPE: dict[str, str] = {}


def _cases():
    for name in NAMES:
        marks = [pytest.mark.slow]
        if name in OUT_OF_SCOPE:
            marks.append(pytest.mark.xfail(strict=True, reason=OUT_OF_SCOPE[name]))
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_cases()))
def test_a_torchvision_classifier_imports_with_pytorchs_flops(name):
    model = zoo.build(TVM, name)
    smallest = zoo.smallest_size(model)
    assert smallest is not None, f"{name} runs at none of {zoo.SIZES}"
    for size in sorted({224, smallest}):
        why = zoo.check(model, name, size)
        assert why is None, f"{name} at {size}x{size}: {why}"


def test_the_zoo_is_the_one_described():
    if TVM is None:
        pytest.skip("torchvision is not installed")
    assert set(OUT_OF_SCOPE) <= set(NAMES)
    assert len(NAMES) >= 80
