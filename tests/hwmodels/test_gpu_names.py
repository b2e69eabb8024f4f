"""GPU names as people write them resolve to exactly one catalog part, by a stated rule: a
name's model, memory size and form factor (and a variant's), the model's default for what the
name leaves out; an ambiguous or unknown name is an error that names the parts it may mean."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwmodels import HardwareError, catalog
from hwmodels.catalog import gpu_names_table as names_table
from hwmodels.catalog import resolve_gpu
from hwmodels.catalog.gpu_names import read_name

SPELLINGS = [
    # (name, variant, part)
    ("Tesla V100-SXM2-16GB", "", "v100"),
    ("V100 SXM2 16GB", "", "v100"),
    ("V100", "", "v100"),
    ("Tesla V100-SXM2-32GB", "", "v100-32gb"),
    ("V100", "DGX-1 V100 SXM2 32GB", "v100-32gb"),
    ("V100", "DGX-2 V100 SXM3 32GB", "v100-32gb"),
    ("V100", "Tesla V100 16GB (AWS P3 or Paperspace; Ubuntu 16.04)", "v100"),
    ("Tesla V100-PCIE-16GB", "", "v100-pcie"),
    ("V100 PCI-E", "", "v100-pcie"),
    ("A100", "", "a100"),
    ("A100", "DGX A100 80GB", "a100-80gb"),
    ("A100", "A100-SXM4-80GB", "a100-80gb"),
    ("A100-SXM4-80GB", "", "a100-80gb"),
    ("NVIDIA A100 80GB PCIe", "", "a100-pcie-80gb"),
    ("A100 PCIe", "", "a100-pcie"),
    ("A100-PCIE-40GB", "", "a100-pcie"),
    ("A100 80 GB", "", "a100-80gb"),
    ("H100 SXM5 80GB", "", "h100"),
    ("NVIDIA H100 80GB HBM3", "", "h100"),
    ("H100 PCIe", "", "h100-pcie"),
    ("H100 NVL", "", "h100-nvl"),
    ("H100", "H100 NVL 94GB", "h100-nvl"),
    ("NVIDIA GH200 Grace Hopper", "", "gh200"),
    ("RTX 2080 Ti", "", "rtx2080ti"),
    ("GeForce RTX 2080 Ti", "", "rtx2080ti"),
    ("NVIDIA GeForce RTX 3090", "", "rtx3090"),
    ("RTX3090", "", "rtx3090"),
    ("GeForce RTX 4090", "", "rtx4090"),
    ("RTX 3080", "10GB", "rtx3080"),
    ("Titan RTX", "", "titan-rtx"),
    ("NVIDIA TITAN RTX", "", "titan-rtx"),
    ("Titan X (Maxwell)", "", "titan-x-maxwell"),
    ("GeForce GTX TITAN X", "", "titan-x-maxwell"),
    ("Titan X (Pascal)", "", "titan-x-pascal"),
    ("Titan Xp", "", "titan-xp"),
    ("TITAN V", "", "titan-v"),
    ("GTX 1080 Ti", "GTX 1080 Ti 11GB (i7-7700, CUDA 8.0)", "gtx1080ti"),
    ("GeForce GTX 1080", "", "gtx1080"),
    ("Quadro RTX 6000", "", "quadro-rtx6000"),
    ("Quadro RTX 8000", "", "quadro-rtx8000"),
    ("RTX 6000 Ada Generation", "", "rtx6000-ada"),
    ("NVIDIA RTX A6000", "", "rtx-a6000"),
    ("Tesla K80", "", "k80"),
    ("Tesla M40", "", "m40"),
    ("Tesla P40", "", "p40"),
    ("Tesla P100-PCIE-16GB", "", "p100"),
    ("Tesla P100-SXM2-16GB", "", "p100-sxm2"),
    ("Tesla T4", "", "t4"),
    ("NVIDIA A10", "", "a10"),
    ("A30", "", "a30"),
    ("A40", "", "a40"),
    ("L40S", "", "l40s"),
    ("a100-80gb", "", "a100-80gb"),
]


@pytest.mark.parametrize("name, variant, part", SPELLINGS)
def test_real_world_spellings_resolve_to_their_part(name, variant, part):
    assert resolve_gpu(name, variant) == part


@pytest.mark.parametrize("name, variant, words", [
    ("Titan X", "", "could be any of titan-x-maxwell (PCIe, 12 GB), titan-x-pascal"),
    ("RTX 6000", "", "could be any of quadro-rtx6000 (PCIe, 24 GB), rtx6000-ada (PCIe, 48 GB)"),
    ("V100 PCIe 32GB", "", "no part of that memory size and form factor; its parts of this "
                           "model: v100 (SXM, 16 GB), v100-pcie (PCIe, 16 GB), v100-32gb"),
    ("H200 NVL", "", "its parts of this model: h200 (SXM, 141 GB)"),
    ("A100", "A100 40GB and 80GB", "states two memory sizes: 40, 80"),
    ("V100 SXM2", "PCIe host", "states two form factors: pcie, sxm"),
])
def test_an_ambiguous_or_missing_sku_is_an_error_naming_the_parts(name, variant, words):
    with pytest.raises(HardwareError) as info:
        resolve_gpu(name, variant)
    assert words in str(info.value)


@pytest.mark.parametrize("name, hint", [
    ("RTX 3090 Ti", "(did you mean 'rtx3090' or "),
    ("GTX 1070", "(did you mean 'gtx1080' or "),
    ("TPUv9", ""),
])
def test_an_unknown_name_keeps_the_did_you_mean(name, hint):
    with pytest.raises(HardwareError, match="is not in the catalog") as info:
        resolve_gpu(name)
    assert hint in str(info.value) and (hint or "did you mean" not in str(info.value))


def test_a_part_missing_from_the_catalog_in_use_is_not_resolved_to():
    with pytest.raises(HardwareError, match="not in the catalog"):
        resolve_gpu("RTX 3090", parts={"v100"})


def test_every_catalog_gpu_has_names_and_every_shared_model_at_most_one_default():
    assert set(names_table()) == set(catalog.names("gpu"))
    defaults: dict[str, list[str]] = {}
    for entry in names_table().values():
        for key in entry.models:
            defaults.setdefault(key, [])
            if entry.default:
                defaults[key].append(entry.part)
    assert all(len(parts) <= 1 for parts in defaults.values()), defaults


def test_a_model_name_states_neither_memory_nor_form_factor():
    stated = read_name("NVIDIA A100-SXM4-80GB")
    assert (stated.model, stated.memory_gb, stated.form_factors) == ("a100", {80}, {"sxm"})


def _written_variants(name: str):
    """A name as it may be written: any case per letter, its separators any of space, hyphen,
    underscore or a run of them, spaces around it."""
    pieces = name.replace("_", "-").split("-")
    return st.tuples(
        st.lists(st.booleans(), min_size=len(name), max_size=len(name)),
        st.lists(st.sampled_from([" ", "-", "_", "  ", " - "]), min_size=len(pieces) - 1,
                 max_size=len(pieces) - 1),
        st.sampled_from(["", " ", "  "])).map(
        lambda t: t[2] + "".join(
            p + (t[1][i] if i < len(t[1]) else "") for i, p in enumerate(
                "".join(c.upper() if up else c for c, up in zip(name, t[0], strict=True)
                        ).replace("_", "-").split("-"))) + t[2])


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(catalog.names("gpu")).flatmap(
    lambda part: st.tuples(st.just(part), _written_variants(part))))
def test_case_and_spacing_variants_of_every_catalog_name_resolve_to_it(case):
    part, written = case
    assert resolve_gpu(written) == part


@pytest.mark.parametrize("part", sorted(names_table()))
def test_every_listed_model_name_resolves_to_a_part_of_it_or_names_them_all(part):
    for key in names_table()[part].models:
        owners = [e.part for e in names_table().values() if key in e.models]
        try:
            assert resolve_gpu(key) in owners
        except HardwareError as exc:
            assert "could be any of" in str(exc) and all(o in str(exc) for o in owners)


def test_the_hardware_flag_answers_a_marketing_name_with_the_part_it_means():
    with pytest.raises(HardwareError, match=r"unknown device 'Tesla V100-SXM2-16GB' "
                                            r"\(did you mean 'v100'\?\)"):
        catalog.device("Tesla V100-SXM2-16GB")
